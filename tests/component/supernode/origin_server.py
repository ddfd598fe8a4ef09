"""A small origin HTTP server on 127.0.0.1:0 for the supernode's component tests."""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Origin:
    """Serves registered blobs; counts hits; remembers request headers per path."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.no_length: set[str] = set()
        self.cut: dict[str, float] = {}  # path -> seconds to wait before breaking the connection midway
        self.auth: dict[str, str] = {}  # path -> required Authorization value
        self.hits: Counter[str] = Counter()  # GETs
        self.heads: Counter[str] = Counter()  # HEADs (the supernode's and dfdaemons' access probes)
        self.keep_alive = True  # False: every answer closes its connection (stop() then leaves none answering)
        self.headers: dict[str, dict[str, str]] = {}
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                origin.hits[path] += 1
                origin.headers[path] = dict(self.headers.items())
                if path in origin.auth and self.headers.get("Authorization") != origin.auth[path]:
                    self._reply(401, b"unauthorized")
                    return
                if path not in origin.blobs:
                    self._reply(404, b"not found")
                    return
                body = origin.blobs[path]
                wanted = self.headers.get("Range")
                if wanted and wanted.startswith("bytes="):
                    start, end = (int(x) for x in wanted[6:].split("-"))
                    end = min(end, len(body) - 1)
                    self._reply(206, body[start : end + 1], extra={"Content-Range": f"bytes {start}-{end}/{len(body)}"})
                    return
                if path in origin.cut:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    time.sleep(origin.cut[path])
                    self.close_connection = True
                    return
                if path in origin.no_length:
                    self.send_response(200)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for i in range(0, len(body), 65536):
                        self.wfile.write(body[i : i + 65536])
                    self.close_connection = True
                    return
                self._reply(200, body)

            def do_HEAD(self) -> None:
                path = self.path.split("?")[0]
                origin.heads[path] += 1
                if path in origin.auth and self.headers.get("Authorization") != origin.auth[path]:
                    status, length = 401, len(b"unauthorized")
                elif path not in origin.blobs:
                    status, length = 404, len(b"not found")
                else:
                    status, length = 200, len(origin.blobs[path])
                self.send_response(status)
                if path not in origin.no_length or status != 200:
                    self.send_header("Content-Length", str(length))
                self._closing()
                self.end_headers()

            def _closing(self) -> None:
                if not origin.keep_alive:
                    self.send_header("Connection", "close")
                    self.close_connection = True

            def _reply(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (extra or {}).items():
                    self.send_header(name, value)
                self._closing()
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> Origin:
        """Serve in a thread."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
