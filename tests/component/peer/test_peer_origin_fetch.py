"""The peer's origin reader (peer.origin.open_origin, and peer.download.origin_read.OriginRead as a download uses
it) against real HTTP origins on loopback: headers and redirects, credentials, kept-alive connections, status
codes, silent origins, pieces offered as they arrive, cancelling, byte ranges."""

from __future__ import annotations

import asyncio
import gzip
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from loopback_origin import Answer, Origin, serve_origin

from dfcommon.content import ContentRequest
from dfcommon.errors import InvalidArgument, OriginError
from dfcommon.http_client import HttpClient
from peer.download.origin_read import OriginRead
from peer.origin import OriginClient, new_client, open_origin
from peer.storage import Storage, TaskStore

DATA = os.urandom(3 * (1 << 20) + 100)


def serve_data(headers: dict[str, str], path: str) -> Answer:
    """DATA, or the part a "bytes=START-END" Range asks for (END optional)."""
    if path == "/moved":
        return Answer(302, {"Location": "/blob"})
    if match := re.fullmatch(r"bytes=(\d+)-(\d*)", headers.get("range", "")):
        first, last = int(match[1]), int(match[2] or len(DATA) - 1)
        part = DATA[first : last + 1]
        return Answer(
            206, {"Content-Length": str(len(part)), "Content-Range": f"bytes {first}-{last}/{len(DATA)}"}, part
        )
    return Answer(200, {"Content-Length": str(len(DATA))}, DATA)


@pytest.fixture
def origin() -> Iterator[Origin]:
    with serve_origin(serve_data) as state:
        yield state


@pytest.fixture
async def client() -> AsyncIterator[OriginClient]:
    client = new_client()
    yield client
    await client.aclose()


async def read(client: OriginClient, request: ContentRequest) -> tuple[int, bytes]:
    """(declared length, body) of request read through the peer's origin reader."""
    async with open_origin(client, request) as response:
        return response.length, b"".join([bytes(chunk) async for chunk in response.body])


async def test_headers_and_redirects_on_one_origin(origin: Origin, client: OriginClient) -> None:
    headers = {"Authorization": "Bearer t", "Range": "bytes=0-9", "accept-encoding": "gzip"}
    assert await read(client, ContentRequest(f"{origin.url}/moved", headers=headers)) == (len(DATA), DATA)
    assert [path for path, _ in origin.seen] == ["/moved", "/blob"]
    for _, seen in origin.seen:
        assert seen["authorization"] == "Bearer t"  # same origin: credentials follow
        assert seen["accept-encoding"] == "identity"
        assert "range" not in seen  # only UrlMeta.range, which is part of the task identity
        assert seen["user-agent"] == "dandelion-peer"


@pytest.mark.parametrize("credentials", ["header", "user-info"])
async def test_a_redirect_to_another_origin_drops_authorization(
    origin: Origin, client: OriginClient, credentials: str
) -> None:
    """Like a registry answering 307 to object storage: the registry's credentials stay with the registry."""
    with serve_origin(serve_data, host="127.0.0.2") as storage:
        target = f"{storage.url}/blob?X-Amz-Signature=abc"
        origin.answer = lambda headers, path: Answer(307, {"Location": target})
        if credentials == "header":
            request = ContentRequest(f"{origin.url}/moved", headers={"Authorization": "Bearer secret"})
        else:
            request = ContentRequest(origin.url.replace("http://", "http://user:secret@") + "/moved")
        assert await read(client, request) == (len(DATA), DATA)
    assert origin.seen[0][1]["authorization"] in ("Bearer secret", "Basic dXNlcjpzZWNyZXQ=")
    assert [path for path, _ in storage.seen] == ["/blob?X-Amz-Signature=abc"]
    assert "authorization" not in storage.seen[0][1]


async def test_user_info_becomes_basic_auth(origin: Origin, client: OriginClient) -> None:
    url = origin.url.replace("http://", "http://user:p%40ss@") + "/blob"
    assert await read(client, ContentRequest(url)) == (len(DATA), DATA)
    assert origin.seen[0][1]["authorization"] == "Basic dXNlcjpwQHNz"  # user:p@ss
    await read(client, ContentRequest(url, headers={"Authorization": "Bearer t"}))
    assert origin.seen[1][1]["authorization"] == "Bearer t"  # the caller's own header wins


async def test_connections_are_kept_alive(origin: Origin, client: OriginClient) -> None:
    for _ in range(3):
        assert await read(client, ContentRequest(f"{origin.url}/blob")) == (len(DATA), DATA)
    assert len(origin.seen) == 3
    assert len(set(origin.ports)) == 1  # one connection, reused


async def test_a_connection_the_origin_closed_is_replaced(origin: Origin, client: OriginClient) -> None:
    origin.answer = lambda headers, path: Answer(200, {"Content-Length": str(len(DATA))}, DATA, hang_up=True)
    for _ in range(3):
        assert await read(client, ContentRequest(f"{origin.url}/blob")) == (len(DATA), DATA)
    assert len(set(origin.ports)) == 3


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, grpc.StatusCode.INVALID_ARGUMENT),
        (401, grpc.StatusCode.UNAUTHENTICATED),
        (403, grpc.StatusCode.PERMISSION_DENIED),
        (404, grpc.StatusCode.NOT_FOUND),
        (410, grpc.StatusCode.NOT_FOUND),
        (429, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (500, grpc.StatusCode.UNAVAILABLE),
        (503, grpc.StatusCode.UNAVAILABLE),
    ],
)
async def test_origin_status_maps_to_code(
    origin: Origin, client: OriginClient, status: int, code: grpc.StatusCode
) -> None:
    origin.answer = lambda headers, path: Answer(status, {"Content-Length": "2"}, b"no")
    url = origin.url.replace("http://", "http://u:p@") + "/blob?x=1"
    with pytest.raises(OriginError) as caught:
        await read(client, ContentRequest(url))
    assert caught.value.code == code
    assert caught.value.http_status == status
    assert str(caught.value).startswith(f"origin returned HTTP {status}")
    assert f"for {origin.url}/blob?x=1" in str(caught.value)
    assert "u:p" not in str(caught.value)
    assert len(origin.seen) == 1  # an error status is not retried with a resume


async def test_an_origin_that_does_not_answer(client: OriginClient) -> None:
    with pytest.raises(OriginError) as caught:
        await read(client, ContentRequest("http://u:p@127.0.0.1:9/blob"))
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert (
        str(caught.value) == "cannot fetch http://127.0.0.1:9/blob: cannot connect to 127.0.0.1:9: connection refused"
    )


@pytest.mark.parametrize("where", ["before-the-status-line", "mid-body"])
async def test_a_silent_origin_times_out(origin: Origin, where: str) -> None:
    """A read timeout per read (not on the whole body); without ETag or Last-Modified no resume is tried."""
    length = {"Content-Length": str(len(DATA))}
    if where == "mid-body":
        origin.answer = lambda headers, path: Answer(200, length, DATA, stall_after=1 << 20)
    else:
        origin.answer = lambda headers, path: Answer(200, length, DATA, hold=True)
    client = OriginClient(HttpClient(read_timeout=0.5))
    started = time.monotonic()
    try:
        with pytest.raises(OriginError) as caught:
            await read(client, ContentRequest(f"{origin.url}/blob"))
    finally:
        await client.aclose()
    assert time.monotonic() - started < 5
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert "timed out" in str(caught.value)
    assert len(origin.seen) == 1


async def test_encoded_bytes_are_kept_as_sent(origin: Origin, client: OriginClient) -> None:
    packed = gzip.compress(DATA, mtime=0)
    origin.answer = lambda headers, path: Answer(
        200, {"Content-Length": str(len(packed)), "Content-Encoding": "gzip"}, packed
    )
    assert await read(client, ContentRequest(f"{origin.url}/blob")) == (-1, packed)  # the length counts encoded bytes


@pytest.mark.parametrize("text", ["5", "-5", "9-1", "a-b", "1-2-3", "1" * 25 + "-2"])
async def test_bad_ranges_are_refused_before_the_origin_is_asked(
    origin: Origin, client: OriginClient, text: str
) -> None:
    with pytest.raises(InvalidArgument):
        await read(client, ContentRequest(f"{origin.url}/blob", byte_range=text))
    assert origin.seen == []


@pytest.mark.parametrize(
    ("text", "sent", "part"),
    [
        ("0-0", "bytes=0-0", DATA[:1]),
        ("100-199", "bytes=100-199", DATA[100:200]),
        ("70000-", "bytes=70000-", DATA[70000:]),
    ],
)
async def test_good_ranges(origin: Origin, client: OriginClient, text: str, sent: str, part: bytes) -> None:
    assert await read(client, ContentRequest(f"{origin.url}/blob", byte_range=text)) == (len(part), part)
    assert origin.seen[0][1]["range"] == sent


class Listener:
    """The download's side of an OriginRead: the store it makes, the pieces stored and offered."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.store: TaskStore | None = None
        self.pieces: list[int] = []  # stored
        self.offered: list[int] = []
        self.offering = asyncio.Event()

    def create_store(self, content_length: int, piece_size: int) -> TaskStore:
        self.store = self.storage.create("t" * 64, "http://o/f", "", content_length, piece_size)
        return self.store

    def answered(self, store: TaskStore) -> None:
        pass

    def stored(self, number: int, size: int, digest: str) -> None:
        self.pieces.append(number)

    def offer(self, number: int, digest: str) -> None:
        self.offered.append(number)
        self.offering.set()


def stalling(after: int) -> Callable[[dict[str, str], str], Answer]:
    """serve_data's answers, stalled after `after` body bytes until the origin is released."""
    return lambda headers, path: replace(serve_data(headers, path), stall_after=after)


def origin_read(tmp_path: Path, client: OriginClient, url: str, listener: Listener, piece_size: int) -> OriginRead:
    return OriginRead(client, ContentRequest(url), url, [], tmp_path, {}, "blake3", listener, None, piece_size)


@pytest.mark.parametrize("piece_size", [64 << 10, 1536 << 10, 1 << 20], ids=["64KiB", "1.5MiB", "1MiB"])
@pytest.mark.parametrize("read", ["whole", "missing-runs"])
async def test_a_piece_is_offered_before_the_next_one_arrives(
    tmp_path: Path, origin: Origin, client: OriginClient, piece_size: int, read: str
) -> None:
    """Peers may fetch a piece while the origin is still slow to send the next (supernode --piece-size 64KiB..)."""
    listener = Listener(Storage(tmp_path))
    first = 0
    store = None
    if read == "missing-runs":  # a store whose first piece came from a parent: the rest with a Range request
        store = listener.create_store(len(DATA), piece_size)
        store.write_piece(0, [DATA[:piece_size]])
        first = 1
    origin.answer = stalling(piece_size)
    reading = asyncio.ensure_future(
        origin_read(tmp_path, client, f"{origin.url}/blob", listener, piece_size).run(store)
    )
    async with asyncio.timeout(5):
        await listener.offering.wait()
    assert listener.offered == [first]
    origin.release.set()
    await reading
    assert listener.store is not None and listener.store.all_held()
    assert listener.store.read(0, len(DATA)) == DATA
    assert sorted(listener.offered) == list(range(first, listener.store.meta.piece_count))


async def test_cancelling_stops_the_fetch_at_once(tmp_path: Path, origin: Origin, client: OriginClient) -> None:
    """A download cancelled while the origin is slow: no piece is stored after it, the connection is closed."""
    piece_size = 64 << 10
    origin.answer = stalling(piece_size)
    listener = Listener(Storage(tmp_path))
    reading = asyncio.ensure_future(origin_read(tmp_path, client, f"{origin.url}/blob", listener, piece_size).run(None))
    async with asyncio.timeout(5):
        await listener.offering.wait()
    started = time.monotonic()
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    assert time.monotonic() - started < 2  # the blocked read was interrupted, not waited out
    origin.release.set()  # the origin sends the rest now: nobody reads it
    assert await asyncio.to_thread(origin.gone.wait, 5), "the origin's connection was closed"
    assert listener.pieces == [0] and listener.offered == [0]
    assert listener.store is not None and [
        n for n in range(listener.store.meta.piece_count) if listener.store.has(n)
    ] == [0]
    assert not any(client.http._idle.values())  # the cut connection is not kept for reuse


async def test_cancelling_while_the_origin_has_not_answered_returns_at_once(
    tmp_path: Path, origin: Origin, client: OriginClient
) -> None:
    """A peer stopping while an origin is slow to answer waits for no read timeout."""
    origin.answer = lambda headers, path: replace(serve_data(headers, path), hold=True)
    listener = Listener(Storage(tmp_path))
    reading = asyncio.ensure_future(origin_read(tmp_path, client, f"{origin.url}/blob", listener, 64 << 10).run(None))
    await asyncio.sleep(0.3)  # the request went out; the origin holds its answer
    assert len(origin.seen) == 1
    started = time.monotonic()
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    assert time.monotonic() - started < 2
    assert listener.store is None  # no answer, no store
    origin.release.set()
    assert await asyncio.to_thread(origin.gone.wait, 5), "the origin's connection was closed"
