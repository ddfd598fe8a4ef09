"""Origin fetch without sockets (httpx.MockTransport): ranges, lengths, encodings, errors, digests."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest

from dfcommon.content import ContentRequest
from dfcommon.errors import DandelionError, InvalidArgument
from supernode.resource.piece import PieceMeta
from supernode.seed.origin import fetch_origin, parse_range

BASE = 64 << 10


class Sink:
    def __init__(self) -> None:
        self.answers: list[tuple[int, int]] = []
        self.pieces: list[PieceMeta] = []

    def answered(self, content_length: int, piece_size: int) -> None:
        self.answers.append((content_length, piece_size))

    def piece_written(self, piece: PieceMeta) -> None:
        assert not self.answers or self.answers[0]  # answered first
        self.pieces.append(piece)


class Chunks(httpx.AsyncByteStream):
    """A streamed body, as a real origin sends it."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i in range(0, len(self.data), 1000):
            yield self.data[i : i + 1000]


def reply(status: int, data: bytes, length: bool = True, headers: dict[str, str] | None = None) -> httpx.Response:
    all_headers = dict(headers or {})
    if length:
        all_headers["Content-Length"] = str(len(data))
    return httpx.Response(status, stream=Chunks(data), headers=all_headers)


def origin(
    body: bytes,
    *,
    ignore_range: bool = False,
    no_length: bool = False,
    gzip_it: bool = False,
    status: int = 200,
    seen: list[httpx.Request] | None = None,
) -> httpx.AsyncClient:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if request.url.path == "/moved":
            return reply(302, b"", headers={"Location": "/blob"})
        if status != 200:
            return reply(status, b"no")
        wanted = request.headers.get("range")
        if wanted and not ignore_range:
            start, end = (int(x) for x in wanted[6:].split("-"))
            return reply(206, body[start : end + 1])
        if gzip_it:
            return reply(200, gzip.compress(body, mtime=0), headers={"Content-Encoding": "gzip"})
        return reply(200, body, length=not no_length)

    return httpx.AsyncClient(transport=httpx.MockTransport(handle), follow_redirects=True)


async def fetch(tmp_path: Path, client: httpx.AsyncClient, request: ContentRequest) -> tuple[bytes, Sink, int]:
    sink = Sink()
    path = tmp_path / "content"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    try:
        result = await fetch_origin(client, request, fd, BASE, sink)
    finally:
        os.close(fd)
        await client.aclose()
    data = path.read_bytes()
    assert result.pieces == sink.pieces
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    for piece in sink.pieces:
        assert hashlib.sha256(data[piece.offset : piece.offset + piece.size]).hexdigest() == piece.sha256
    return data, sink, result.content_length


BODY = os.urandom(3 * BASE + 100)
GZIPPED = gzip.compress(BODY, mtime=0)


@pytest.mark.parametrize(
    ("options", "byte_range", "expected", "declared"),
    [
        pytest.param({}, "", BODY, len(BODY), id="whole"),
        pytest.param({}, "10-70009", BODY[10:70010], 70000, id="range-206"),
        pytest.param({"ignore_range": True}, "10-70009", BODY[10:70010], 70000, id="range-ignored-200"),
        pytest.param({"no_length": True}, "", BODY, -1, id="no-content-length"),
        pytest.param({"gzip_it": True}, "", GZIPPED, -1, id="encoded-bytes-kept-as-sent"),
    ],
)
async def test_fetch_cuts_pieces(
    tmp_path: Path, options: dict[str, bool], byte_range: str, expected: bytes, declared: int
) -> None:
    client = origin(
        BODY,
        ignore_range=options.get("ignore_range", False),
        no_length=options.get("no_length", False),
        gzip_it=options.get("gzip_it", False),
    )
    data, sink, length = await fetch(tmp_path, client, ContentRequest("http://o/blob", byte_range=byte_range))
    assert data == expected
    assert length == len(expected)
    assert sink.answers == [(declared, BASE)]
    assert [p.number for p in sink.pieces] == list(range(len(sink.pieces)))
    assert sum(p.size for p in sink.pieces) == len(expected)


async def test_headers_and_redirects(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    client = origin(BODY, seen=seen)
    request = ContentRequest(
        "http://o/moved", headers={"Authorization": "Bearer t", "Range": "bytes=0-9", "accept-encoding": "gzip"}
    )
    data, _, _ = await fetch(tmp_path, client, request)
    assert data == BODY
    assert [r.url.path for r in seen] == ["/moved", "/blob"]
    assert seen[0].headers["authorization"] == "Bearer t"
    assert seen[0].headers["accept-encoding"] == "identity"
    assert "range" not in seen[0].headers  # only UrlMeta.range, which is part of the task identity


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
async def test_origin_status_maps_to_code(tmp_path: Path, status: int, code: grpc.StatusCode) -> None:
    with pytest.raises(DandelionError) as caught:
        await fetch(tmp_path, origin(BODY, status=status), ContentRequest("http://u:p@o/blob?x=1"))
    assert caught.value.code == code
    assert str(caught.value).startswith(f"origin returned HTTP {status}")
    assert "for http://o/blob?x=1" in str(caught.value)
    assert "u:p" not in str(caught.value)


@pytest.mark.parametrize(
    ("digest", "ok"),
    [
        ("sha256:" + hashlib.sha256(BODY).hexdigest(), True),
        ("md5:" + hashlib.md5(BODY).hexdigest(), True),
        ("sha256:" + "0" * 64, False),
        ("md5:" + "0" * 32, False),
    ],
)
async def test_digest_is_verified(tmp_path: Path, digest: str, ok: bool) -> None:
    request = ContentRequest("http://o/blob", digest=digest)
    if ok:
        data, _, _ = await fetch(tmp_path, origin(BODY), request)
        assert data == BODY
    else:
        with pytest.raises(DandelionError) as caught:
            await fetch(tmp_path, origin(BODY), request)
        assert caught.value.code == grpc.StatusCode.DATA_LOSS


@pytest.mark.parametrize("text", ["", "5", "5-", "-5", "9-1", "a-b", "1-2-3", "1" * 25 + "-2"])
def test_bad_ranges(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_range(text)


def test_good_range() -> None:
    assert parse_range("0-0") == (0, 0)
    assert parse_range("100-199") == (100, 199)


async def test_a_piece_is_offered_before_the_next_one_arrives(tmp_path: Path) -> None:
    """Peers may fetch piece 0 while the origin is still slow to send piece 1."""
    offered = asyncio.Event()

    class Watching(Sink):
        def piece_written(self, piece: PieceMeta) -> None:
            super().piece_written(piece)
            offered.set()

    sink = Watching()
    release = asyncio.Event()

    class Stalling(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield BODY[:BASE]  # exactly piece 0
            await release.wait()
            yield BODY[BASE:]

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Stalling(), headers={"Content-Length": str(len(BODY))})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    fd = os.open(tmp_path / "content", os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    try:
        fetching = asyncio.create_task(fetch_origin(client, ContentRequest(url="http://o/blob"), fd, BASE, sink))
        async with asyncio.timeout(10):
            await offered.wait()
        assert [p.number for p in sink.pieces] == [0]
        release.set()
        result = await fetching
    finally:
        os.close(fd)
        await client.aclose()
    assert [p.number for p in result.pieces] == [0, 1, 2, 3]
