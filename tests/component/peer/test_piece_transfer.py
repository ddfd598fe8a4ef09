"""PeerService upload servicer and the piece fetcher, in-process over real gRPC on loopback."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from blake3 import blake3
from dandelion.peer.v1 import peer_pb2

from dfcommon.channels import channel
from dfcommon.grants import GrantIssuer, GrantKeys
from dfcommon.grpcserver import new_server
from peer.grpcutil import peer_stub
from peer.piece import failures
from peer.piece.fetcher import Requester, fetch_group
from peer.piece.model import Parent, PieceOutcome, PieceSpec
from peer.rpc.upload import UploadServicer, add_upload_service
from peer.storage import Storage, TaskStore
from peer.tokenbucket import TokenBucket

PIECE = 3 << 20  # three 1 MiB chunks per piece
TASK = "task-1"


class Served:
    """A parent: storage with a task, served by UploadServicer on 127.0.0.1:port."""

    def __init__(
        self, root: Path, data: bytes, held: list[int], slots: int = 4, rate: int = 0, grants: GrantKeys | None = None
    ) -> None:
        self.storage = Storage(root)
        self.store = self.storage.create(TASK, "http://o/f", "", len(data), PIECE)
        for number in held:
            offset, size = self.store.span(number)
            self.store.write_piece(number, [data[offset : offset + size]])
        self.servicer = UploadServicer(self.storage, slots, TokenBucket(rate), grants=grants)
        self.server = new_server()
        add_upload_service(self.servicer, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")


@pytest.fixture
def data() -> bytes:
    return os.urandom(4 * PIECE - 12345)


@pytest.fixture
async def parent(tmp_path: Path, data: bytes) -> AsyncIterator[Served]:
    served = Served(tmp_path / "parent", data, held=[0, 1, 2])
    await served.server.start()
    yield served
    await served.server.stop(None)
    served.storage.close()


def specs(data: bytes, numbers: list[int], corrupt: int | None = None) -> list[PieceSpec]:
    out = []
    for n in numbers:
        offset = n * PIECE
        size = min(PIECE, len(data) - offset)
        digest = blake3(data[offset : offset + size]).hexdigest()
        out.append(PieceSpec(n, offset, size, "blake3:" + ("0" * 64 if n == corrupt else digest)))
    return out


def child_store(tmp_path: Path, data: bytes) -> TaskStore:
    return Storage(tmp_path / "child").create(TASK, "http://o/f", "", len(data), PIECE)


async def fetch(
    parent: Served, store: TaskStore, pieces: list[PieceSpec], requester: Requester = ("child", "", None)
) -> list[PieceOutcome]:
    outcomes: list[PieceOutcome] = []
    ch = channel(f"127.0.0.1:{parent.port}")
    try:
        await fetch_group(
            ch, TASK, requester, Parent("p", "127.0.0.1", parent.port), pieces, store, outcomes.append, []
        )
    finally:
        await ch.close(None)
    return outcomes


async def test_pieces_arrive_verified_and_stored(parent: Served, tmp_path: Path, data: bytes) -> None:
    store = child_store(tmp_path, data)
    outcomes = await fetch(parent, store, specs(data, [2, 0, 1]))
    assert sorted((o.number, o.success) for o in outcomes) == [(0, True), (1, True), (2, True)]
    assert store.read(0, 3 * PIECE) == data[: 3 * PIECE]
    assert parent.servicer.busy == 0


async def test_bad_digest_is_reported_and_not_stored(parent: Served, tmp_path: Path, data: bytes) -> None:
    store = child_store(tmp_path, data)
    outcomes = await fetch(parent, store, specs(data, [0, 1, 2], corrupt=1))
    assert sorted((o.number, o.success, o.failure) for o in outcomes) == [
        (0, True, 0),
        (1, False, failures.BAD_DIGEST),
        (2, True, 0),
    ]
    assert not store.has(1)
    assert store.read(PIECE, PIECE) == bytes(PIECE)  # nothing of the bad piece was written


async def test_missing_piece_fails_rest(parent: Served, tmp_path: Path, data: bytes) -> None:
    store = child_store(tmp_path, data)
    outcomes = await fetch(parent, store, specs(data, [0, 3, 1]))
    assert sorted((o.number, o.success, o.failure) for o in outcomes) == [
        (0, True, 0),
        (1, False, failures.PARENT_MISSING_PIECE),
        (3, False, failures.PARENT_MISSING_PIECE),
    ]


async def test_unreachable_parent(tmp_path: Path, data: bytes) -> None:
    store = child_store(tmp_path, data)
    ch = channel("127.0.0.1:1")
    outcomes: list[PieceOutcome] = []
    await fetch_group(
        ch, TASK, ("c", "", None), Parent("p", "127.0.0.1", 1), specs(data, [0, 1]), store, outcomes.append, []
    )
    await ch.close(None)
    assert [(o.number, o.failure) for o in outcomes] == [
        (0, failures.PARENT_UNAVAILABLE),
        (1, failures.PARENT_UNAVAILABLE),
    ]


async def test_busy_slots_and_bad_requests(tmp_path: Path, data: bytes) -> None:
    served = Served(tmp_path / "slow", data, held=[0, 1, 2], slots=1, rate=2 << 20)
    await served.server.start()
    ch = channel(f"127.0.0.1:{served.port}")
    stub = peer_stub(ch)
    try:
        slow = stub.DownloadPieces(peer_pb2.DownloadPiecesRequest(task_id=TASK, piece_numbers=[0, 1, 2]))
        first = await slow.read()
        assert isinstance(first, peer_pb2.DownloadPiecesResponse) and first.piece_number == 0
        with pytest.raises(grpc.aio.AioRpcError) as busy:
            await stub.DownloadPieces(peer_pb2.DownloadPiecesRequest(task_id=TASK, piece_numbers=[1])).read()
        assert busy.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        slow.cancel()
        await asyncio.sleep(0.2)
        for request, code in [
            (peer_pb2.DownloadPiecesRequest(task_id="nope", piece_numbers=[0]), grpc.StatusCode.NOT_FOUND),
            (peer_pb2.DownloadPiecesRequest(task_id="", piece_numbers=[0]), grpc.StatusCode.INVALID_ARGUMENT),
            (peer_pb2.DownloadPiecesRequest(task_id=TASK, piece_numbers=[3]), grpc.StatusCode.NOT_FOUND),
        ]:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for _ in stub.DownloadPieces(request):
                    pass
            assert info.value.code() == code
    finally:
        await ch.close(None)
        await served.server.stop(None)
        served.storage.close()


async def test_each_piece_is_reported_once_stored_not_after_the_next(tmp_path: Path, data: bytes) -> None:
    """Readers and the scheduler hear of piece 0 while piece 1 is still coming from a slow parent."""
    slow = Served(tmp_path / "slow", data, held=[0, 1], rate=4 << 20)  # 3 MiB pieces: ~0.75 s each
    await slow.server.start()
    store = child_store(tmp_path, data)
    loop = asyncio.get_running_loop()
    reported: dict[int, float] = {}
    ch = channel(f"127.0.0.1:{slow.port}")
    try:
        await fetch_group(
            ch,
            TASK,
            ("child", "", None),
            Parent("p", "127.0.0.1", slow.port),
            specs(data, [0, 1]),
            store,
            lambda outcome: reported.setdefault(outcome.number, loop.time()),
            [],
        )
        finished = loop.time()
    finally:
        await ch.close(None)
        await slow.server.stop(None)
        slow.storage.close()
    assert set(reported) == {0, 1}
    assert finished - reported[0] > 0.4, "piece 0 was reported only when piece 1 had arrived"


async def test_a_parent_checking_grants_serves_only_the_granted_host(tmp_path: Path, data: bytes) -> None:
    """The fetcher sends its grant and host id; a refused fetch stores nothing, reports each piece failed once, and
    holds no upload slot."""
    supernode = GrantIssuer()
    keys = GrantKeys()
    keys.learn(supernode.key_id, supernode.public_key)
    served = Served(tmp_path / "parent", data, held=[0, 1], slots=1, grants=keys)
    await served.server.start()
    try:
        grant = supernode.issue(TASK, "host-a")
        store = child_store(tmp_path, data)
        for requester in [
            ("c", "host-b", grant),
            ("c", "host-a", None),
            ("c", "host-a", GrantIssuer().issue(TASK, "host-a")),
        ]:
            outcomes = await fetch(served, store, specs(data, [0, 1]), requester)
            assert [(o.number, o.success) for o in outcomes] == [(0, False), (1, False)]
            assert store.completed_length() == 0 and served.servicer.busy == 0
        outcomes = await fetch(served, store, specs(data, [0, 1]), ("c", "host-a", grant))
        assert [(o.number, o.success) for o in outcomes] == [(0, True), (1, True)]
        assert served.servicer.busy == 0
    finally:
        await served.server.stop(None)
        served.storage.close()
