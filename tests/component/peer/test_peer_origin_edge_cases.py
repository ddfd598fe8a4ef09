"""Back-to-source against real HTTP origins (127.0.0.1): no length, bodies cut short, Range ignored, redirects."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from loopback_origin import Answer, Origin, serve_origin

from dfcommon.content import ContentRequest
from dfcommon.errors import DandelionError, DigestMismatch, OriginError
from dfcommon.identity import task_id
from peer.context import PeerContext
from peer.origin import new_client, open_origin
from peer.storage import Storage
from peer.transferer import SwarmTransferer

DATA = os.urandom(9 << 20)  # two full 4 MiB pieces and a short one


@pytest.fixture
def origin() -> Iterator[Origin]:
    with serve_origin(lambda headers, path: Answer(body=DATA)) as state:
        yield state


def make_transferer(tmp_path: Path) -> SwarmTransferer:
    return SwarmTransferer(PeerContext(storage=Storage(tmp_path), scheduler=None, http=new_client()))


async def close(transferer: SwarmTransferer) -> None:
    await transferer.close()
    await transferer.ctx.http.aclose()


async def read_all(transferer: SwarmTransferer, request: ContentRequest) -> bytes:
    stream = await transferer.open(request)
    return b"".join([chunk async for chunk in stream.chunks()])


async def test_origin_without_content_length(tmp_path: Path, origin: Origin) -> None:
    """No Content-Length, the body ends with the connection: the length is learnt at the end."""
    origin.answer = lambda headers, path: Answer(body=DATA)
    url = f"{origin.url}/blob"
    transferer = make_transferer(tmp_path)
    digest = f"sha256:{hashlib.sha256(DATA).hexdigest()}"
    stream = await transferer.open(ContentRequest(url, digest=digest, headers={"Authorization": "x"}))
    assert b"".join([chunk async for chunk in stream.chunks()]) == DATA
    await stream.conductor.finished.wait()  # the cache entry is sealed just after the last byte went out
    _, headers = origin.seen[0]
    assert headers["accept-encoding"] == "identity"
    assert headers["authorization"] == "x"
    assert headers["user-agent"] == "dandelion-peer"
    store = transferer.ctx.storage.get_complete(task_id(url, digest))
    assert store is not None and store.meta.content_length == len(DATA) and store.meta.piece_count == 3
    meta = (store.directory / "meta.json").read_text()
    assert "Authorization" not in meta and '"x"' not in meta
    await close(transferer)


@pytest.mark.parametrize("framing", ["length", "chunked", "none"])
async def test_body_cut_short_fails_and_serves_nothing(tmp_path: Path, origin: Origin, framing: str) -> None:
    headers = {"Content-Length": str(len(DATA))} if framing == "length" else {}
    origin.answer = lambda h, path: Answer(headers=headers, body=DATA, cut=5 << 20, chunked=framing == "chunked")
    url = f"{origin.url}/blob"
    transferer = make_transferer(tmp_path)
    digest = f"sha256:{hashlib.sha256(DATA).hexdigest()}"
    # A known length or chunk framing shows the cut; a body that just ends is caught by the digest.
    expected: type[DandelionError] = DigestMismatch if framing == "none" else OriginError
    with pytest.raises(expected) as info:
        await read_all(transferer, ContentRequest(url, digest=digest))
    wanted = {"length": "ended early", "chunked": "reading the body failed", "none": "has digest"}[framing]
    assert wanted in str(info.value)
    assert "\n" not in str(info.value)
    storage, tid = transferer.ctx.storage, task_id(url, digest)
    assert storage.get_complete(tid) is None
    kept = storage.get(tid)  # a cut shown by framing keeps the verified pieces for the next try; a mismatch nothing
    assert kept is None if framing == "none" else (kept is not None and kept.interrupted and not kept.all_held())
    assert not any(transferer.ctx.http.http._idle.values())  # the cut connection is not kept for reuse
    await close(transferer)


async def test_range_request_for_a_byte_range(tmp_path: Path, origin: Origin) -> None:
    part = DATA[100:5_000_100]
    origin.answer = lambda headers, path: Answer(206, {"Content-Length": str(len(part))}, part)
    transferer = make_transferer(tmp_path)
    got = await read_all(transferer, ContentRequest(f"{origin.url}/blob", byte_range="100-5000099"))
    assert got == part
    assert origin.seen[0][1]["range"] == "bytes=100-5000099"
    await close(transferer)


async def test_origin_ignoring_range_is_an_error(tmp_path: Path, origin: Origin) -> None:
    origin.answer = lambda headers, path: Answer(200, {"Content-Length": str(len(DATA))}, DATA)
    transferer = make_transferer(tmp_path)
    with pytest.raises(OriginError) as info:
        await read_all(transferer, ContentRequest(f"{origin.url}/blob", byte_range="10-19"))
    assert "ignored the Range request" in str(info.value)
    await close(transferer)


async def test_redirects_are_followed(tmp_path: Path, origin: Origin) -> None:
    def answer(headers: dict[str, str], path: str) -> Answer:
        if path == "/old":
            return Answer(302, {"Location": "/new"})
        return Answer(200, {"Content-Length": str(len(DATA))}, DATA)

    origin.answer = answer
    transferer = make_transferer(tmp_path)
    assert await read_all(transferer, ContentRequest(f"{origin.url}/old")) == DATA
    assert [path for path, _ in origin.seen] == ["/old", "/new"]
    await close(transferer)


async def test_unreachable_origin_is_one_line(tmp_path: Path) -> None:
    transferer = make_transferer(tmp_path)
    with pytest.raises(OriginError) as info:
        await read_all(transferer, ContentRequest("http://127.0.0.1:9/blob"))
    assert str(info.value) == "cannot fetch http://127.0.0.1:9/blob: cannot connect to 127.0.0.1:9: connection refused"
    await close(transferer)


async def test_leaving_a_body_early_stops_its_reader_at_once(origin: Origin) -> None:
    """A consumer that stops (a failed piece, a cancelled download) does not wait for the rest of the body."""
    origin.answer = lambda headers, path: Answer(200, {"Content-Length": str(len(DATA))}, DATA, stall_after=2 << 20)
    client = new_client()
    started = time.monotonic()
    async with open_origin(client, ContentRequest(f"{origin.url}/blob")) as response:
        assert response.length == len(DATA)
        got = 0
        async for chunk in response.body:
            got += len(chunk)
            if got >= 1 << 20:
                break
    assert time.monotonic() - started < 5  # not the origin's 30 s stall, nor the 60 s read timeout
    await client.aclose()


async def test_cancelling_while_the_origin_is_silent_returns_at_once(origin: Origin) -> None:
    origin.answer = lambda headers, path: Answer(200, {"Content-Length": str(len(DATA))}, DATA, stall_after=0)
    client = new_client()

    async def read() -> None:
        async with open_origin(client, ContentRequest(f"{origin.url}/blob")) as response:
            async for _ in response.body:
                pass

    reading = asyncio.ensure_future(read())
    await asyncio.sleep(0.3)
    started = time.monotonic()
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    assert time.monotonic() - started < 2
    await client.aclose()
