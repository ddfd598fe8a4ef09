"""A consumer of content with a digest always hashes the whole content itself before it hands it out: no word from
the supernode (not even a TaskInfo SUCCEEDED naming the digest, which older supernodes sent as "the seed checked it")
and no piece digest vouches for the whole. A scripted supernode (in-process gRPC) and a real parent (UploadServicer)
that serves other bytes than the digest names: the peer must catch it in every case."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from dandelion.common.v1 import common_pb2
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc

from dfcommon.content import ContentRequest
from dfcommon.errors import DigestMismatch
from dfcommon.grpcserver import new_server
from dfcommon.identity import task_id
from peer.context import PeerContext
from peer.origin import new_client
from peer.rpc.upload import UploadServicer, add_upload_service
from peer.scheduler_client import host_info
from peer.scheduler_cluster import SchedulerClient
from peer.storage import Storage
from peer.tokenbucket import TokenBucket
from peer.transferer import SwarmTransferer

PIECE = 1 << 20
URL = "http://origin.invalid/blob"  # never fetched: the tests turn back-to-source off


@dataclass
class Script:
    """What the scripted supernode tells the peer."""

    digest: str  # TaskInfo.digest of the SUCCEEDED message
    send_hashes: bool = True  # assignments carry the parent's piece sha256
    vouch: bool = True  # send TaskInfo SUCCEEDED once the peer holds every piece


class ScriptedSupernode(scheduler_pb2_grpc.SchedulerServiceServicer):
    """Registers anybody, assigns every piece to one parent, then (maybe) says the seed verified the digest."""

    def __init__(self, script: Script, data: bytes, parent_port: int, request_digest: str) -> None:
        self.script = script
        self.data = data
        self.parent_port = parent_port
        self.request_digest = request_digest
        self.results: list[bool] = []

    def _task(self, state: common_pb2.TaskState.ValueType, digest: str) -> scheduler_pb2.TaskInfo:
        count = -(-len(self.data) // PIECE)
        return scheduler_pb2.TaskInfo(
            task_id=task_id(URL, self.request_digest, (), ""),
            url=URL,
            digest=digest,
            content_length=len(self.data),
            piece_size=PIECE,
            piece_count=count,
            state=state,
        )

    async def RegisterHost(self, request: object, context: object) -> scheduler_pb2.RegisterHostResponse:
        return scheduler_pb2.RegisterHostResponse(host_id="host-1", heartbeat_interval_ms=60_000)

    async def HeartbeatHost(self, request: object, context: object) -> scheduler_pb2.HeartbeatHostResponse:
        return scheduler_pb2.HeartbeatHostResponse()

    async def LeaveHost(self, request: object, context: object) -> scheduler_pb2.LeaveHostResponse:
        return scheduler_pb2.LeaveHostResponse()

    async def RegisterTask(self, request: object, context: object) -> scheduler_pb2.RegisterTaskResponse:
        task = self._task(common_pb2.TASK_STATE_RUNNING, self.request_digest)
        return scheduler_pb2.RegisterTaskResponse(task=task, peer_id="peer-1")

    async def SyncPieces(
        self, requests: AsyncIterator[scheduler_pb2.SyncPiecesRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[scheduler_pb2.SyncPiecesResponse]:
        assignments = []
        for number, offset in enumerate(range(0, len(self.data), PIECE)):
            body = self.data[offset : offset + PIECE]
            sha = hashlib.sha256(body).hexdigest() if self.script.send_hashes else ""
            piece = common_pb2.PieceInfo(number=number, offset=offset, size=len(body), sha256=sha)
            parent = common_pb2.PeerAddress(peer_id="parent", host_id="h2", ip="127.0.0.1", port=self.parent_port)
            assignments.append(scheduler_pb2.PieceAssignment(piece=piece, parent=parent))
        yield scheduler_pb2.SyncPiecesResponse(assignments=scheduler_pb2.PieceAssignments(assignments=assignments))
        held: set[int] = set()
        async for message in requests:
            held |= {result.piece_number for result in message.results if result.success}
            if len(held) == len(assignments):
                break
        if self.script.vouch:
            yield scheduler_pb2.SyncPiecesResponse(task=self._task(common_pb2.TASK_STATE_SUCCEEDED, self.script.digest))

    async def ReportPeerResult(
        self, request: scheduler_pb2.ReportPeerResultRequest, context: object
    ) -> scheduler_pb2.ReportPeerResultResponse:
        self.results.append(request.success)
        return scheduler_pb2.ReportPeerResultResponse()

    async def LeaveTask(self, request: object, context: object) -> scheduler_pb2.LeaveTaskResponse:
        return scheduler_pb2.LeaveTaskResponse()


@dataclass
class Setup:
    transferer: SwarmTransferer
    supernode: ScriptedSupernode
    storage: Storage


@pytest.fixture
def served_bytes() -> bytes:
    return os.urandom(5 * PIECE - 4321)


@pytest.fixture
def digest_of_served(served_bytes: bytes) -> str:
    return "sha256:" + hashlib.sha256(served_bytes).hexdigest()


@contextlib.asynccontextmanager
async def run_setup(tmp_path: Path, script: Script, served: bytes, request_digest: str) -> AsyncIterator[Setup]:
    """A parent serving `served` for the task of (URL, request_digest), the scripted supernode, a peer."""
    tid = task_id(URL, request_digest, (), "")
    parent_storage = Storage(tmp_path / "parent")
    store = parent_storage.create(tid, URL, request_digest, len(served), PIECE)
    for number in range(store.meta.piece_count):
        offset, size = store.span(number)
        store.write_piece(number, [served[offset : offset + size]])
    parent_server = new_server()
    add_upload_service(UploadServicer(parent_storage, 4, TokenBucket(0), grants=None), parent_server)
    parent_port = parent_server.add_insecure_port("127.0.0.1:0")
    supernode = ScriptedSupernode(script, served, parent_port, request_digest)
    supernode_server = new_server()
    scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server(supernode, supernode_server)
    supernode_port = supernode_server.add_insecure_port("127.0.0.1:0")
    await parent_server.start()
    await supernode_server.start()
    storage = Storage(tmp_path / "peer")
    scheduler = SchedulerClient([f"127.0.0.1:{supernode_port}"], host_info("127.0.0.1", 1, 4))
    ctx = PeerContext(storage=storage, scheduler=scheduler, http=new_client(), no_back_source=True)
    transferer = SwarmTransferer(ctx)
    try:
        yield Setup(transferer, supernode, storage)
    finally:
        await transferer.close()
        await scheduler.close(leave=False)
        await ctx.channels.close()
        await ctx.http.aclose()
        await supernode_server.stop(None)
        await parent_server.stop(None)
        storage.close()
        parent_storage.close()


async def download(setup: Setup, digest: str) -> bytes:
    stream = await setup.transferer.open(ContentRequest(url=URL, digest=digest))
    return b"".join([chunk async for chunk in stream.chunks()])


async def test_good_content_is_hashed_here_and_served(
    tmp_path: Path, served_bytes: bytes, digest_of_served: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="peer.conductor")
    async with run_setup(tmp_path, Script(digest=digest_of_served), served_bytes, digest_of_served) as setup:
        assert await download(setup, digest_of_served) == served_bytes
        for _ in range(100):
            if setup.supernode.results:
                break
            await asyncio.sleep(0.05)
        assert setup.supernode.results == [True]
        assert "digest checked here" in caplog.text
        tid = task_id(URL, digest_of_served, (), "")
        cached = setup.storage.get_complete(tid)
        assert cached is not None and cached.complete


@pytest.mark.parametrize(
    "script_kind",
    ["no piece hashes", "no word from the seed", "seed vouches for another digest", "seed vouches for it"],
)
async def test_bad_content_is_caught_whatever_the_supernode_says(
    tmp_path: Path, served_bytes: bytes, digest_of_served: str, script_kind: str
) -> None:
    # The peer asks for content with another digest than the parent's bytes have.
    wanted = "sha256:" + hashlib.sha256(b"the real content").hexdigest()
    script = {
        # The seed says it verified `wanted`, but pieces come without the seed's sha256: the peer must hash.
        "no piece hashes": Script(digest=wanted, send_hashes=False),
        # Pieces match their (lying) hashes, but the seed never says the digest matched.
        "no word from the seed": Script(digest=wanted, vouch=False),
        # The seed vouches for a digest that is not the one asked for.
        "seed vouches for another digest": Script(digest=digest_of_served),
        # Every piece matches the digest it was given, and the supernode says the wanted digest was checked.
        "seed vouches for it": Script(digest=wanted),
    }[script_kind]
    async with run_setup(tmp_path, script, served_bytes, wanted) as setup:
        with pytest.raises(DigestMismatch):
            await asyncio.wait_for(download(setup, wanted), 30)
        assert setup.storage.get_complete(task_id(URL, wanted, (), "")) is None
        assert setup.supernode.results == [False]
