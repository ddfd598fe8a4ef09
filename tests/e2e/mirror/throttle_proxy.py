"""A loopback TCP proxy whose responses flow at a fixed rate per connection: a registry on a slow uplink."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

from tcp_proxy import TcpProxy

CHUNK = 64 * 1024


@dataclass
class ThrottleProxy(TcpProxy):
    """Forwards 127.0.0.1:port to target; what target answers reaches the client at `rate` bytes/s per connection."""

    rate: int = field(kw_only=True)
    sent: int = 0  # bytes of responses forwarded to clients (headers included)

    @property
    def url(self) -> str:
        """http://127.0.0.1:<port>."""
        return f"http://{self.addr}"

    def __enter__(self) -> ThrottleProxy:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def pump(self, client: socket.socket, upstream: socket.socket) -> None:
        """Requests go up as they come; responses come down at the rate."""
        threading.Thread(target=self._forward, args=(client, upstream, 0), daemon=True).start()
        threading.Thread(target=self._forward, args=(upstream, client, self.rate), daemon=True).start()

    def _forward(self, source: socket.socket, sink: socket.socket, rate: int) -> None:
        started, sent = time.monotonic(), 0
        while True:
            try:
                data = source.recv(CHUNK)
            except OSError:
                data = b""
            if not data:
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)
                return
            if rate:
                sent += len(data)
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            try:
                sink.sendall(data)
            except OSError:
                return
            if rate:
                with self._lock:
                    self.sent += len(data)
