"""The HTTP servers inside Dandelion's processes (the registry mirror, the supernode's web view): uvicorn on a
socket bound before serving (a taken address is one line at start-up), on the process's own event loop and
signal handling."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Generator
from typing import Any

import uvicorn

from dfcommon.errors import Unavailable


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the process that embeds it owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Install nothing."""
        yield


def embedded_config(app: Any, http: Any, graceful_s: int, **options: Any) -> uvicorn.Config:
    """uvicorn's settings for an embedded server: the caller's loop, no websockets, lifespan, access log, logging
    set-up, Server header or proxy headers; http is the protocol (a name or an asyncio.Protocol class)."""
    return uvicorn.Config(
        app,
        loop="none",
        http=http,
        ws="none",
        lifespan="off",
        access_log=False,
        log_config=None,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=graceful_s,
        **options,
    )


def listening_socket(host: str, port: int, what: str, backlog: int = 1024) -> socket.socket:
    """A listening non-blocking TCP socket on host (IPv4 or IPv6, brackets allowed) and port; Unavailable naming
    what listens when the address is taken or not ours."""
    host = host.strip("[]")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as err:
        sock.close()
        raise Unavailable(f"{what} cannot listen on {host}:{port}: {err.strerror or err}") from None
    return sock
