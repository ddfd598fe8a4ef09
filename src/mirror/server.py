"""The mirror's HTTP server: uvicorn (httptools) on the caller's event loop, signals left to the daemon."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from dfcommon.httpserve import EmbeddedServer, embedded_config, listening_socket
from mirror import aborts
from mirror.app import build_app
from mirror.config import MirrorConfig
from mirror.prefetch import Prefetcher
from mirror.transfer import BlobTransferer
from registryclient.upstream import Upstream

log = logging.getLogger(__name__)

# Keep-alive a little longer than a pull's pauses between requests, like distribution's own server.
KEEP_ALIVE_S = 75
# On stop, streaming responses get this long to finish before connections are cut.
SHUTDOWN_GRACE_S = 5


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening non-blocking TCP socket; Unavailable with one line if the address is taken."""
    return listening_socket(host, port, "registry mirror")


async def serve_mirror(
    config: MirrorConfig, transferer: BlobTransferer, stop: asyncio.Event, sock: socket.socket | None = None
) -> None:
    """Serve the mirror until stop is set (sock: an already-listening socket to use instead of config.listen)."""
    own_socket = sock is None
    if sock is None:
        sock = bind_socket(*config.hostport())
    upstream = Upstream(config)
    prefetcher = Prefetcher(upstream, transferer) if config.prefetch_layers else None
    app = build_app(config, transferer, upstream, prefetcher)
    server_config = embedded_config(app, "httptools", SHUTDOWN_GRACE_S, timeout_keep_alive=KEEP_ALIVE_S)
    server = EmbeddedServer(server_config)
    aborts.install()  # a response cut for an expected cause is the access log's one line, not a traceback
    address = sock.getsockname()
    log.info(
        "registry mirror listening on http://%s:%d, upstreams: %s; allowed upstreams: %s",
        address[0],
        address[1],
        upstream.registries.describe(),
        upstream.allowed.describe(),
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        await serving
    finally:
        stopping.cancel()
        if not serving.done():
            server.should_exit = True
            with contextlib.suppress(BaseException):
                await serving
        if prefetcher is not None:
            await prefetcher.aclose()
        await upstream.aclose()
        if own_socket:
            sock.close()
        log.info("registry mirror stopped")
