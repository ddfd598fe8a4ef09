"""A loopback TCP proxy's plumbing: listen on 127.0.0.1, connect each client to the target, hand both sockets to
the subclass (which pumps bytes as it likes), close everything at stop."""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class TcpProxy:
    """Forwards 127.0.0.1:port to target; subclasses start the pumps of each connection in pump()."""

    target: tuple[str, int]
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _listener: socket.socket | None = None
    _connections: list[socket.socket] = field(default_factory=list)

    @property
    def addr(self) -> str:
        """host:port of the proxy."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Listen on 127.0.0.1:<port 0> and accept in a background thread."""
        listener = socket.create_server(("127.0.0.1", 0))
        self._listener = listener
        self.port = int(listener.getsockname()[1])
        threading.Thread(target=self._accept_loop, name=type(self).__name__, daemon=True).start()

    def stop(self) -> None:
        """Close the listener and every open connection."""
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            for sock in self._connections:
                with contextlib.suppress(OSError):
                    sock.close()
            self._connections.clear()

    def pump(self, client: socket.socket, upstream: socket.socket) -> None:
        """Start moving bytes between a new client and its upstream connection (threads of the subclass's)."""
        raise NotImplementedError

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
                self._connections += [client, upstream]
            self.pump(client, upstream)
