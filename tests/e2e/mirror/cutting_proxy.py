"""A loopback TCP proxy that cuts the first response carrying one blob after some bytes, and records requests."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from tcp_proxy import TcpProxy

_REQUEST_HEAD = re.compile(rb"(?P<method>[A-Z]+) (?P<target>\S+) HTTP/1\.[01]\r\n(?P<headers>.*?)\r\n\r\n", re.S)
_RANGE = re.compile(rb"^range:\s*bytes=(\d+)-", re.I | re.M)


@dataclass(frozen=True)
class SeenRequest:
    """A request that went through the proxy; range_start is the N of `Range: bytes=N-` if any."""

    method: str
    target: str
    range_start: int | None


@dataclass
class _Connection:
    """Per-connection state: whether the response now flowing is being cut, and how much went out."""

    cutting: bool = False
    sent: int = 0


@dataclass
class CuttingProxy(TcpProxy):
    """Forwards 127.0.0.1:port to target; the first GET of cut_digest is cut after cut_after response bytes."""

    cut_digest: str = field(kw_only=True)
    cut_after: int = field(kw_only=True)
    requests: list[SeenRequest] = field(default_factory=list)
    cuts: int = 0

    def ranged_gets_of_cut_blob(self) -> list[int]:
        """Range starts of the GETs of the cut blob that resumed it."""
        return [
            r.range_start
            for r in self.requests
            if r.method == "GET" and self.cut_digest in r.target and r.range_start is not None
        ]

    def pump(self, client: socket.socket, upstream: socket.socket) -> None:
        """Requests are parsed on the way up; the cut response is cut on the way down."""
        state = _Connection()
        threading.Thread(target=self._pump_requests, args=(client, upstream, state), daemon=True).start()
        threading.Thread(target=self._pump_responses, args=(upstream, client, state), daemon=True).start()

    def _pump_requests(self, client: socket.socket, upstream: socket.socket, state: _Connection) -> None:
        pending = b""
        while True:
            try:
                data = client.recv(65536)
            except OSError:
                data = b""
            if not data:
                with contextlib.suppress(OSError):
                    upstream.shutdown(socket.SHUT_WR)
                return
            pending += data
            while (match := _REQUEST_HEAD.search(pending)) is not None:
                pending = pending[match.end() :]
                range_match = _RANGE.search(match["headers"])
                seen = SeenRequest(
                    match["method"].decode(),
                    match["target"].decode(errors="replace"),
                    int(range_match.group(1)) if range_match else None,
                )
                with self._lock:
                    self.requests.append(seen)
                    if seen.method == "GET" and self.cut_digest in seen.target and self.cuts == 0:
                        self.cuts = 1
                        state.cutting, state.sent = True, 0
            if len(pending) > 1 << 20:
                pending = b""  # not HTTP we understand (e.g. a TLS hello): just forward it
            try:
                upstream.sendall(data)
            except OSError:
                return

    def _pump_responses(self, upstream: socket.socket, client: socket.socket, state: _Connection) -> None:
        while True:
            try:
                data = upstream.recv(65536)
            except OSError:
                data = b""
            if not data:
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_WR)
                return
            if state.cutting:
                room = self.cut_after - state.sent
                if len(data) >= room:
                    with contextlib.suppress(OSError):
                        client.sendall(data[:room])
                    # Cut: close both sides as a dropped connection would.
                    for sock in (client, upstream):
                        with contextlib.suppress(OSError):
                            sock.shutdown(socket.SHUT_RDWR)
                        sock.close()
                    return
                state.sent += len(data)
            try:
                client.sendall(data)
            except OSError:
                return


@contextlib.contextmanager
def cutting_proxy(target: tuple[str, int], cut_digest: str, cut_after: int) -> Iterator[CuttingProxy]:
    """Run a CuttingProxy for the duration of the context."""
    proxy = CuttingProxy(target, cut_digest=cut_digest, cut_after=cut_after)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
