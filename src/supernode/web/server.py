"""The supernode's live web view (--web HOST:PORT): uvicorn on the supernode's own event loop, so the page reads
the scheduler's state between two scheduler steps without locks, and never changes it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from typing import Any

from dfcommon.httpserve import EmbeddedServer, embedded_config, listening_socket
from dfcommon.inspection import InspectionPolicy
from dfcommon.sizes import parse_hostport
from dfcommon.tls import TlsConfig
from supernode.scheduling.scheduler import Scheduler
from supernode.web.access import ClientNames, recording_protocol
from supernode.web.app import build_app
from supernode.web.sampler import Sampler
from supernode.web.snapshot import swarm_view

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 1  # the event stream never ends by itself: cut it on stop
VIEW_TTL_S = 0.5


def bind(address: str) -> socket.socket:
    """A listening non-blocking socket on HOST:PORT; Unavailable with one line when that fails."""
    host, port = parse_hostport(address)
    return listening_socket(host, port, "web view", backlog=128)


class WebView:
    """The page, its JSON and the sampler behind its rates; start() binds, stop() closes."""

    def __init__(
        self,
        sock: socket.socket,
        scheduler: Scheduler,
        policy: InspectionPolicy,
        tls: TlsConfig | None,
    ) -> None:
        self.sock = sock
        self.sampler = Sampler(scheduler, scheduler.clock)
        self.scheduler = scheduler
        self.policy = policy
        self.tls = tls
        self.port = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._server: EmbeddedServer | None = None
        self._view: tuple[float, dict[str, Any]] | None = None
        self._closing = asyncio.Event()  # set on stop: open event streams end

    def view(self) -> dict[str, Any]:
        """The swarm as the page shows it, built at most once per VIEW_TTL_S whatever the number of viewers."""
        now = self.scheduler.clock()
        if self._view is None or now - self._view[0] >= VIEW_TTL_S:
            self._view = (now, swarm_view(self.scheduler, self.sampler))
        return self._view[1]

    async def start(self) -> int:
        """Serve on the bound socket in the background; its port."""
        names: ClientNames = {}
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # not "Started server process" at info
        sock = self.sock
        options: dict[str, Any] = {}
        if self.tls is not None:
            options = {
                "ssl_certfile": str(self.tls.cert),
                "ssl_keyfile": str(self.tls.key),
                "ssl_ca_certs": str(self.tls.ca),
                "ssl_cert_reqs": ssl.CERT_REQUIRED,
            }
        app = build_app(self.view, self.policy, names, self._closing)
        config = embedded_config(app, recording_protocol(names), SHUTDOWN_GRACE_S, **options)
        self._server = EmbeddedServer(config)
        self.port = int(sock.getsockname()[1])
        self._tasks = [
            asyncio.create_task(self.sampler.run(), name="web-sampler"),
            asyncio.create_task(self._server.serve(sockets=[sock]), name="web-view"),
        ]
        scheme = "https" if self.tls is not None else "http"
        log.info("web view on %s://%s:%d/ (%s)", scheme, sock.getsockname()[0], self.port, self._who())
        return self.port

    def _who(self) -> str:
        if self.policy.open:
            return "any certificate the cluster CA signed" if self.tls is not None else "open to every caller"
        if self.tls is not None:
            return f"admin certificates: {', '.join(sorted(self.policy.admin_names))}"
        return "loopback callers only"

    async def stop(self) -> None:
        """End the event streams, stop serving and sampling."""
        self._closing.set()
        if self._server is not None:
            self._server.should_exit = True
        for task in reversed(self._tasks):
            if task.get_name() == "web-sampler":
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                async with asyncio.timeout(SHUTDOWN_GRACE_S + 5):
                    await task
        self.sock.close()
