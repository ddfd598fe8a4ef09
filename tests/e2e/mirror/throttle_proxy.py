"""A loopback TCP proxy whose responses flow at a fixed rate per connection: a registry on a slow uplink."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

CHUNK = 64 * 1024


@dataclass
class ThrottleProxy:
    """Forwards 127.0.0.1:port to target; what target answers reaches the client at `rate` bytes/s per connection."""

    target: tuple[str, int]
    rate: int
    port: int = 0
    sent: int = 0  # bytes of responses forwarded to clients (headers included)
    _listener: socket.socket | None = None
    _sockets: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        """http://127.0.0.1:<port>."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThrottleProxy:
        listener = socket.create_server(("127.0.0.1", 0))
        self._listener = listener
        self.port = int(listener.getsockname()[1])
        threading.Thread(target=self._accept_loop, name="throttle-proxy", daemon=True).start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()
            self._sockets.clear()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=30)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, 0), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, self.rate), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, rate: int) -> None:
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
