"""A threaded HTTP/1.1 origin on a loopback address whose answers the test decides per request (back-to-source
tests): what it saw (path, headers, client port), bodies cut, stalled or held until released."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PART = 300_000  # bytes per write of a body


@dataclass
class Answer:
    """What the origin sends for one request: status, headers, and the body (cut after `cut` bytes if set)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    cut: int | None = None
    chunked: bool = False
    stall_after: int | None = None  # send this many body bytes, then nothing (connection open) until released
    hold: bool = False  # send nothing, not even the status line, until released
    hang_up: bool = False  # close the connection after the response without saying so (an idle timeout)


@dataclass
class Origin:
    """The origin's state: how it answers, what it saw, and the release of stalled answers."""

    answer: Callable[[dict[str, str], str], Answer]
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # path, lower-cased headers
    ports: list[int] = field(default_factory=list)  # the client's port for each request in seen
    broken: list[str] = field(default_factory=list)  # paths whose body could not be sent (the client had gone)
    gone: threading.Event = field(default_factory=threading.Event)  # set with each entry of broken
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients hang up mid-exchange on purpose here (cuts, timeouts, cancelling)


@contextlib.contextmanager
def serve_origin(answer: Callable[[dict[str, str], str], Answer], host: str = "127.0.0.1") -> Iterator[Origin]:
    """An origin on host (port 0) answering with answer(headers, path); stopped (stalls released) after the block."""
    state = Origin(answer=answer)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            state.seen.append((self.path, headers))
            state.ports.append(self.client_address[1])
            answer = state.answer(headers, self.path)
            if answer.hold:
                state.release.wait(30)
            try:
                self._respond(answer)
            except (BrokenPipeError, ConnectionResetError):
                state.broken.append(self.path)
                state.gone.set()
                self.close_connection = True
                return
            if answer.cut is not None or answer.hang_up:
                self.close_connection = True

        def _respond(self, answer: Answer) -> None:
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            body = answer.body if answer.cut is None else answer.body[: answer.cut]
            if answer.chunked:
                self.send_header("Transfer-Encoding", "chunked")
            elif "Content-Length" not in answer.headers and "Location" not in answer.headers:
                self.send_header("Connection", "close")  # no length, no chunks: the body ends with the connection
            if "Location" in answer.headers:
                self.send_header("Content-Length", "0")
            self.end_headers()
            stall = answer.stall_after
            for at in range(0, len(body), PART):
                if stall is not None and at <= stall < at + PART:
                    self._write(body[at:stall], answer.chunked)
                    self.wfile.flush()
                    state.release.wait(30)
                    self._write(body[stall : at + PART], answer.chunked)
                else:
                    self._write(body[at : at + PART], answer.chunked)
            if answer.chunked and answer.cut is None:
                self.wfile.write(b"0\r\n\r\n")

        def _write(self, part: bytes, chunked: bool) -> None:
            if part:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)

    server = _Server((host, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://{host}:{server.server_address[1]}"
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
