"""The seed's origin fetch against a real HTTP server on loopback: ranges, lengths, encodings, redirects, errors,
digests, kept-alive connections, cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest
from blake3 import blake3
from fixtures.piece_sink import RecordingSink

from dfcommon.content import ContentRequest
from dfcommon.errors import DandelionError, InvalidArgument, OriginError
from dfcommon.http_client import HttpClient
from supernode.resource.piece import PieceMeta
from supernode.seed.origin import FetchResult, OriginFetcher, new_fetcher, parse_range

BASE = 64 << 10
BODY = os.urandom(3 * BASE + 100)
GZIPPED = gzip.compress(BODY, mtime=0)


@dataclass
class Behaviour:
    """How the test origin answers, and what it saw."""

    ignore_range: bool = False
    chunked: bool = False
    gzip_it: bool = False
    status: int = 200
    redirect_to: str = ""  # absolute URL /moved points at, else /blob on this server
    hang_up: bool = False  # close each connection after its response without saying so (an idle timeout)
    release: threading.Event = field(default_factory=threading.Event)  # /stall sends the rest once set
    seen: list[tuple[str, dict[str, str], int]] = field(default_factory=list)  # path, headers, client port


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: OriginServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        behaviour = self.server.behaviour
        behaviour.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}, self.client_address[1]))
        if self.path == "/moved":
            self._send(302, b"", {"Location": behaviour.redirect_to or "/blob"})
        elif behaviour.status != 200:
            self._send(behaviour.status, b"no")
        elif self.path == "/hang":  # no status line until released
            behaviour.release.wait(30)
            self._send(200, BODY)
        elif self.path == "/stall":
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY[:BASE])  # exactly piece 0
            self.wfile.flush()
            behaviour.release.wait(30)
            self.wfile.write(BODY[BASE:])
        elif (wanted := self.headers.get("range")) and not behaviour.ignore_range:
            start, end = (int(x) for x in wanted[6:].split("-"))
            self._send(206, BODY[start : end + 1])
        elif behaviour.gzip_it:
            self._send(200, GZIPPED, {"Content-Encoding": "gzip"})
        elif behaviour.chunked:
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(BODY), 10000):
                part = BODY[i : i + 10000]
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self._send(200, BODY)
        if behaviour.hang_up:
            self.close_connection = True

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class OriginServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, behaviour: Behaviour) -> None:
        super().__init__((host, 0), Handler)
        self.behaviour = behaviour

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the fetch hangs up mid-body on purpose here (ranges the origin ignored, timeouts, cancelling)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


def serve(host: str, behaviour: Behaviour) -> Iterator[OriginServer]:
    server = OriginServer(host, behaviour)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        behaviour.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def behaviour() -> Behaviour:
    return Behaviour()


@pytest.fixture
def origin(behaviour: Behaviour) -> Iterator[OriginServer]:
    yield from serve("127.0.0.1", behaviour)


@pytest.fixture
def fetcher() -> Iterator[OriginFetcher]:
    fetcher = new_fetcher()
    yield fetcher
    asyncio.run(fetcher.aclose())


class WatchingSink(RecordingSink):
    """Sets offered at each piece."""

    def __init__(self) -> None:
        super().__init__()
        self.offered = asyncio.Event()

    def piece_written(self, piece: PieceMeta) -> None:
        super().piece_written(piece)
        self.offered.set()


async def fetch(tmp_path: Path, fetcher: OriginFetcher, request: ContentRequest) -> tuple[bytes, RecordingSink, int]:
    sink = RecordingSink()
    path = tmp_path / "content"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    try:
        result = await fetcher.fetch(request, fd, BASE, sink)
    finally:
        os.close(fd)
    data = path.read_bytes()
    assert result.pieces == sink.pieces
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    for piece in sink.pieces:
        assert blake3(data[piece.offset : piece.offset + piece.size]).hexdigest() == piece.digest.removeprefix(
            "blake3:"
        )
    return data, sink, result.content_length


@pytest.mark.parametrize(
    ("options", "byte_range", "expected", "declared"),
    [
        pytest.param({}, "", BODY, len(BODY), id="whole"),
        pytest.param({}, "10-70009", BODY[10:70010], 70000, id="range-206"),
        pytest.param({"ignore_range": True}, "10-70009", BODY[10:70010], 70000, id="range-ignored-200"),
        pytest.param({"ignore_range": True}, "70000-70009", BODY[70000:70010], 10, id="range-ignored-past-piece"),
        pytest.param({"chunked": True}, "", BODY, -1, id="chunked-no-content-length"),
        pytest.param({"gzip_it": True}, "", GZIPPED, -1, id="encoded-bytes-kept-as-sent"),
    ],
)
async def test_fetch_cuts_pieces(
    tmp_path: Path,
    behaviour: Behaviour,
    origin: OriginServer,
    fetcher: OriginFetcher,
    options: dict[str, bool],
    byte_range: str,
    expected: bytes,
    declared: int,
) -> None:
    for name, value in options.items():
        setattr(behaviour, name, value)
    request = ContentRequest(f"{origin.url}/blob", byte_range=byte_range)
    data, sink, length = await fetch(tmp_path, fetcher, request)
    assert data == expected
    assert length == len(expected)
    assert sink.answers == [(declared, BASE)]
    assert [p.number for p in sink.pieces] == list(range(len(sink.pieces)))
    assert sum(p.size for p in sink.pieces) == len(expected)


async def test_headers_and_redirects(
    tmp_path: Path, behaviour: Behaviour, origin: OriginServer, fetcher: OriginFetcher
) -> None:
    request = ContentRequest(
        f"{origin.url}/moved",
        headers={"Authorization": "Bearer t", "Range": "bytes=0-9", "accept-encoding": "gzip"},
    )
    data, _, _ = await fetch(tmp_path, fetcher, request)
    assert data == BODY
    assert [path for path, _, _ in behaviour.seen] == ["/moved", "/blob"]
    for _, headers, _ in behaviour.seen:
        assert headers["authorization"] == "Bearer t"  # same origin: credentials follow
        assert headers["accept-encoding"] == "identity"
        assert "range" not in headers  # only UrlMeta.range, which is part of the task identity


async def test_a_redirect_to_another_origin_drops_authorization(
    tmp_path: Path, behaviour: Behaviour, origin: OriginServer, fetcher: OriginFetcher
) -> None:
    """Like a registry answering 307 to object storage: the registry's credentials stay with the registry."""
    storage = Behaviour()
    for other in serve("127.0.0.2", storage):
        behaviour.redirect_to = f"{other.url}/blob?X-Amz-Signature=abc"
        request = ContentRequest(f"{origin.url}/moved", headers={"Authorization": "Bearer secret"})
        data, _, _ = await fetch(tmp_path, fetcher, request)
    assert data == BODY
    assert behaviour.seen[0][1]["authorization"] == "Bearer secret"
    assert [path for path, _, _ in storage.seen] == ["/blob?X-Amz-Signature=abc"]
    assert "authorization" not in storage.seen[0][1]


async def test_user_info_becomes_basic_auth(
    tmp_path: Path, behaviour: Behaviour, origin: OriginServer, fetcher: OriginFetcher
) -> None:
    url = origin.url.replace("http://", "http://user:p%40ss@") + "/blob"
    await fetch(tmp_path, fetcher, ContentRequest(url))
    assert behaviour.seen[0][1]["authorization"] == "Basic dXNlcjpwQHNz"  # user:p@ss


async def test_connections_are_kept_alive(
    tmp_path: Path, behaviour: Behaviour, origin: OriginServer, fetcher: OriginFetcher
) -> None:
    for _ in range(3):
        await fetch(tmp_path, fetcher, ContentRequest(f"{origin.url}/blob"))
    ports = {port for _, _, port in behaviour.seen}
    assert len(behaviour.seen) == 3
    assert len(ports) == 1  # one connection, reused


async def test_a_connection_the_origin_closed_is_replaced(
    tmp_path: Path, behaviour: Behaviour, origin: OriginServer, fetcher: OriginFetcher
) -> None:
    behaviour.hang_up = True
    for _ in range(3):
        data, _, _ = await fetch(tmp_path, fetcher, ContentRequest(f"{origin.url}/blob"))
        assert data == BODY
    assert len({port for _, _, port in behaviour.seen}) == 3


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (404, grpc.StatusCode.NOT_FOUND),
        (401, grpc.StatusCode.UNAUTHENTICATED),
        (403, grpc.StatusCode.PERMISSION_DENIED),
        (500, grpc.StatusCode.UNAVAILABLE),
        (503, grpc.StatusCode.UNAVAILABLE),
    ],
)
async def test_origin_status_maps_to_code(
    tmp_path: Path,
    behaviour: Behaviour,
    origin: OriginServer,
    fetcher: OriginFetcher,
    status: int,
    code: grpc.StatusCode,
) -> None:
    behaviour.status = status
    url = origin.url.replace("http://", "http://u:p@") + "/blob?x=1"
    with pytest.raises(DandelionError) as caught:
        await fetch(tmp_path, fetcher, ContentRequest(url))
    assert caught.value.code == code
    assert str(caught.value).startswith(f"origin returned HTTP {status}")
    assert f"for {origin.url}/blob?x=1" in str(caught.value)
    assert "u:p" not in str(caught.value)


async def test_an_origin_that_does_not_answer(
    tmp_path: Path, fetcher: OriginFetcher, caplog: pytest.LogCaptureFixture
) -> None:
    """The caller (remote, through RegisterTask or PreheatTask) learns only that the origin was not reached; the
    supernode's log says why."""
    with pytest.raises(OriginError) as caught:
        await fetch(tmp_path, fetcher, ContentRequest("http://127.0.0.1:9/blob"))
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert str(caught.value) == "origin unreachable or not allowed: http://127.0.0.1:9/blob"
    assert "cannot connect to 127.0.0.1:9: connection refused" in caplog.text


async def test_an_origin_silent_mid_body_times_out(
    tmp_path: Path, origin: OriginServer, caplog: pytest.LogCaptureFixture
) -> None:
    fetcher = OriginFetcher(HttpClient(read_timeout=0.5))
    try:
        with pytest.raises(OriginError, match="origin unreachable or not allowed"):
            await fetch(tmp_path, fetcher, ContentRequest(f"{origin.url}/stall"))
        assert "timed out" in caplog.text
    finally:
        await fetcher.aclose()


@pytest.mark.parametrize(
    ("digest", "ok"),
    [
        ("sha256:" + hashlib.sha256(BODY).hexdigest(), True),
        ("md5:" + hashlib.md5(BODY).hexdigest(), True),
        ("sha256:" + "0" * 64, False),
        ("md5:" + "0" * 32, False),
    ],
)
async def test_digest_is_verified(
    tmp_path: Path, origin: OriginServer, fetcher: OriginFetcher, digest: str, ok: bool
) -> None:
    request = ContentRequest(f"{origin.url}/blob", digest=digest)
    if ok:
        data, _, _ = await fetch(tmp_path, fetcher, request)
        assert data == BODY
    else:
        with pytest.raises(DandelionError) as caught:
            await fetch(tmp_path, fetcher, request)
        assert caught.value.code == grpc.StatusCode.DATA_LOSS


@pytest.mark.parametrize("text", ["", "5", "5-", "-5", "9-1", "a-b", "1-2-3", "1" * 25 + "-2"])
def test_bad_ranges(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_range(text)


def test_good_range() -> None:
    assert parse_range("0-0") == (0, 0)
    assert parse_range("100-199") == (100, 199)


@contextlib.asynccontextmanager
async def in_background(
    tmp_path: Path, fetcher: OriginFetcher, url: str
) -> AsyncIterator[tuple[asyncio.Task[FetchResult], WatchingSink, int]]:
    """A fetch of url running as a task, its sink and its fd (closed after the block; await the task in it)."""
    sink = WatchingSink()
    fd = os.open(tmp_path / "content", os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    try:
        yield asyncio.create_task(fetcher.fetch(ContentRequest(url), fd, BASE, sink)), sink, fd
    finally:
        os.close(fd)


async def test_a_piece_is_offered_before_the_next_one_arrives(
    tmp_path: Path, behaviour: Behaviour, origin: OriginServer, fetcher: OriginFetcher
) -> None:
    """Peers may fetch piece 0 while the origin is still slow to send piece 1."""
    async with in_background(tmp_path, fetcher, f"{origin.url}/stall") as (fetching, sink, _):
        async with asyncio.timeout(10):
            await sink.offered.wait()
        assert [p.number for p in sink.pieces] == [0]
        behaviour.release.set()
        result = await fetching
    assert [p.number for p in result.pieces] == [0, 1, 2, 3]


async def test_cancelling_stops_the_fetch_thread_at_once(
    tmp_path: Path, origin: OriginServer, fetcher: OriginFetcher
) -> None:
    """The caller closes fd after a cancelled fetch: no write may follow, and no piece is offered after it."""
    async with in_background(tmp_path, fetcher, f"{origin.url}/stall") as (fetching, sink, fd):
        async with asyncio.timeout(10):
            await sink.offered.wait()
        started = time.monotonic()
        fetching.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fetching
        assert time.monotonic() - started < 2  # the blocked read was interrupted, not waited out
        assert os.fstat(fd).st_size == BASE
    assert [p.number for p in sink.pieces] == [0]


async def test_cancelling_while_the_origin_has_not_answered_returns_at_once(
    tmp_path: Path, origin: OriginServer, fetcher: OriginFetcher
) -> None:
    """A supernode stopping while an origin is slow to answer waits for no read timeout."""
    async with in_background(tmp_path, fetcher, f"{origin.url}/hang") as (fetching, sink, _):
        await asyncio.sleep(0.3)  # the request went out; the origin holds its answer
        started = time.monotonic()
        fetching.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fetching
        assert time.monotonic() - started < 2
    assert sink.answers == []
