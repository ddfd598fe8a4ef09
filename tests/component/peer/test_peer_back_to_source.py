"""The transferer without a supernode: origin fetches, shared downloads, streaming, verification, cache reuse."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from fixtures.origin import OriginServer, start_origin, write_random_file
from fixtures.processes import ProcessGroup

from dfcommon.content import ContentRequest
from dfcommon.errors import DandelionError, DigestMismatch, InvalidArgument, OriginError
from dfcommon.identity import task_id
from dfcommon.pieces import CHUNK_SIZE, piece_size_for
from peer import transferer as transferer_module
from peer.context import PeerContext
from peer.origin import new_client
from peer.storage import Storage, TaskStore
from peer.transferer import SwarmTransferer, TaskStream

SIZE = 9 * (4 << 20) + 777  # ten pieces, a short last one


@pytest.fixture(scope="module")
def origin(module_process_group: ProcessGroup, tmp_path_factory: pytest.TempPathFactory) -> OriginServer:
    root = tmp_path_factory.mktemp("origin")
    write_random_file(root / "blob.bin", SIZE, seed=1)
    write_random_file(root / "slow.bin", 16 << 20, seed=2)
    return start_origin(module_process_group, root)


@pytest.fixture(scope="module")
def slow_origin(module_process_group: ProcessGroup, origin: OriginServer) -> OriginServer:
    return start_origin(module_process_group, origin.root, rate=8 << 20, name="slow-origin")


@pytest.fixture
async def transferer(tmp_path: Path) -> AsyncIterator[SwarmTransferer]:
    storage = Storage(tmp_path / "peer")
    ctx = PeerContext(storage=storage, scheduler=None, http=new_client())
    swarm = SwarmTransferer(ctx)
    yield swarm
    await swarm.close()
    await ctx.http.aclose()
    storage.close()


async def read_all(stream: TaskStream) -> bytes:
    return b"".join([chunk async for chunk in stream.chunks()])


def expected(origin: OriginServer, name: str) -> bytes:
    return (origin.root / name).read_bytes()


async def test_concurrent_readers_share_one_download(origin: OriginServer, transferer: SwarmTransferer) -> None:
    origin.reset()
    request = ContentRequest(origin.url("blob.bin"))
    streams = await asyncio.gather(*(transferer.open(request, offset) for offset in (0, 0, 5_000_000)))
    bodies = await asyncio.gather(*(read_all(s) for s in streams))
    data = expected(origin, "blob.bin")
    assert bodies == [data, data, data[5_000_000:]]
    assert origin.bytes_served("blob.bin") == SIZE  # one origin fetch for three readers

    again = await transferer.open(request, 100)
    assert await read_all(again) == data[100:]
    assert origin.bytes_served("blob.bin") == SIZE  # the cache answered


async def test_first_bytes_before_the_content_is_complete(
    slow_origin: OriginServer, transferer: SwarmTransferer
) -> None:
    stream = await transferer.open(ContentRequest(slow_origin.url("slow.bin")))
    chunks = stream.chunks()
    first = await anext(chunks)
    assert len(first) == min(CHUNK_SIZE, piece_size_for(stream.content_length))  # the first piece
    assert stream.completed_length() < stream.content_length  # still downloading
    rest = b"".join([c async for c in chunks])
    assert first + rest == expected(slow_origin, "slow.bin")


async def test_digest_checked_and_bad_content_not_cached(origin: OriginServer, transferer: SwarmTransferer) -> None:
    data = expected(origin, "blob.bin")
    good = f"sha256:{hashlib.sha256(data).hexdigest()}"
    assert await read_all(await transferer.open(ContentRequest(origin.url("blob.bin"), digest=good))) == data

    bad = "sha256:" + "ab" * 32
    stream = await transferer.open(ContentRequest(origin.url("blob.bin"), digest=bad))
    received = 0
    with pytest.raises(DigestMismatch):
        async for chunk in stream.chunks():
            received += len(chunk)
    assert received < SIZE  # the last bytes were held back
    assert transferer.ctx.storage.get(task_id(origin.url("blob.bin"), bad)) is None
    md5 = f"md5:{hashlib.md5(data).hexdigest()}"
    assert await read_all(await transferer.open(ContentRequest(origin.url("blob.bin"), digest=md5))) == data


async def test_byte_range_of_the_origin(origin: OriginServer, transferer: SwarmTransferer) -> None:
    data = expected(origin, "blob.bin")
    stream = await transferer.open(ContentRequest(origin.url("blob.bin"), byte_range="1000-5000999"))
    assert stream.content_length == 5_000_000
    assert await read_all(stream) == data[1000:5_001_000]


async def test_errors(origin: OriginServer, transferer: SwarmTransferer) -> None:
    with pytest.raises(OriginError) as missing:
        await transferer.open(ContentRequest(origin.url("nope.bin")))
    assert missing.value.code == grpc.StatusCode.NOT_FOUND
    assert str(missing.value) == f"origin returned HTTP 404 Not Found for {origin.url('nope.bin')}"
    with pytest.raises(OriginError) as denied:
        await transferer.open(ContentRequest(origin.url("private/x"), headers={"Authorization": "Basic c2VjcmV0"}))
    assert denied.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert "c2VjcmV0" not in str(denied.value)
    with pytest.raises(InvalidArgument):
        await transferer.open(ContentRequest("ftp://host/x"))
    with pytest.raises(InvalidArgument):
        await transferer.open(ContentRequest(origin.url("blob.bin"), digest="sha1:abc"))
    with pytest.raises(DandelionError) as past:
        await transferer.open(ContentRequest(origin.url("blob.bin")), SIZE + 1)
    assert past.value.code == grpc.StatusCode.OUT_OF_RANGE


async def test_no_back_source_without_supernode(origin: OriginServer, transferer: SwarmTransferer) -> None:
    with pytest.raises(DandelionError) as info:
        await transferer.open(ContentRequest(origin.url("blob.bin")), no_back_source=True)
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    assert "back-to-source is off" in str(info.value)


async def test_a_dfget_leaving_after_the_last_byte_does_not_stop_the_flush(
    origin: OriginServer, transferer: SwarmTransferer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dfget exits once it has the last byte, while the cache may still be flushing a large file to disk: the
    verified copy is kept (and the peer stays in the swarm as a parent), not stopped as an abandoned download."""
    monkeypatch.setattr(transferer_module, "ABANDON_GRACE_S", 0.05)
    flush = TaskStore.mark_complete

    def slow_flush(store: TaskStore) -> None:
        time.sleep(0.5)  # a slow disk's fsync: well past the grace
        flush(store)

    monkeypatch.setattr(TaskStore, "mark_complete", slow_flush)
    request = ContentRequest(origin.url("blob.bin"))
    stream = await transferer.open(request, stop_when_abandoned=True)
    assert await read_all(stream) == expected(origin, "blob.bin")
    await stream.aclose()
    await asyncio.sleep(0.8)
    assert transferer.ctx.storage.get_complete(transferer.task_id_of(request)) is not None
