"""Who may see the web view: the same rule as the inspection RPCs (dfcommon.inspection).

Without TLS: callers on loopback, or everyone with --open-inspection. With the supernode's TLS files the view is
HTTPS and asks for a client certificate the cluster CA signed; the handshake's verified common names are kept per
connection (uvicorn does not put them in the request) so the rule can ask for an admin name.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from dfcommon.inspection import InspectionPolicy
from dfcommon.tls import is_loopback_host

ClientNames = dict[tuple[str, int], list[str]]


def common_names(cert: dict[str, Any] | None) -> list[str]:
    """The commonName values of a certificate's subject as ssl's getpeercert() gives it."""
    names: list[str] = []
    for rdn in (cert or {}).get("subject", ()):
        names.extend(str(value) for key, value in rdn if key == "commonName")
    return names


def recording_protocol(names: ClientNames) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol, keeping each TLS connection's verified common names in names by client
    (ip, port) while it is open."""

    class Recording(HttpToolsProtocol):
        _key: tuple[str, int] | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            peer = transport.get_extra_info("peername")
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is not None and isinstance(peer, tuple) and len(peer) >= 2:
                self._key = (str(peer[0]), int(peer[1]))
                names[self._key] = common_names(ssl_object.getpeercert())

        def connection_lost(self, exc: Exception | None) -> None:
            if self._key is not None:
                names.pop(self._key, None)
            super().connection_lost(exc)

    return Recording


class InspectionGuard:
    """ASGI middleware: 403 with the reason, one line, for a caller the inspection policy refuses."""

    def __init__(self, app: ASGIApp, policy: InspectionPolicy, names: ClientNames) -> None:
        self.app = app
        self.policy = policy
        self.names = names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            client = scope.get("client")
            local = client is not None and is_loopback_host(str(client[0]))
            names = self.names.get((str(client[0]), int(client[1])), []) if client else []
            reason = self.policy.refusal_of(names, local)
            if reason is not None:
                await PlainTextResponse(reason + "\n", status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)
