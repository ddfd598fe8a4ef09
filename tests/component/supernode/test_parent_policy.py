"""The parent policy, chosen by name (--parent-policy), over gRPC: a real supernode in-process, hosts that say where
they are (HostInfo.location) and follow the protocol on their SyncPieces streams.

A reader in zone z2 offers four pieces; a peer in zone z1 fetches them all from it, which makes the reader the more
reliable parent (four uploads done) with its upload rate known. A new child in z1 then asks for one piece: `default`
ranks the reader first (free slots and success rate outweigh the shared zone), `nearest` the peer in the child's
zone. The supernode's /metrics counts the bytes each child received by where its parent was.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import Running, make_config, scrape, started
from dandelion.common.v1 import common_pb2
from dandelion.scheduler.v1 import scheduler_pb2
from fixtures.processes import free_port

PIECE = 64 << 10
PIECES = 4
BODY = bytes(range(256)) * (PIECES * PIECE // 256)
DIGEST = "sha256:" + hashlib.sha256(BODY).hexdigest()


class Stream:
    """One peer's SyncPieces stream: messages to send, messages received."""

    def __init__(self, node: Running, first: scheduler_pb2.SyncPiecesRequest) -> None:
        self.outgoing: asyncio.Queue[scheduler_pb2.SyncPiecesRequest | None] = asyncio.Queue()
        self.outgoing.put_nowait(first)
        self.call = node.scheduler.SyncPieces(self._requests())
        self.peer_id = first.peer_id

    async def _requests(self) -> AsyncIterator[scheduler_pb2.SyncPiecesRequest]:
        while (message := await self.outgoing.get()) is not None:
            yield message

    async def next_event(self, kind: str) -> scheduler_pb2.SyncPiecesResponse:
        """The next message carrying kind (others skipped), within 10 s."""
        while True:
            message = await asyncio.wait_for(self.call.read(), 10)
            assert message is not None, f"the stream ended before any {kind}"
            if message.WhichOneof("event") == kind:
                return message

    def send(self, **fields: object) -> None:
        self.outgoing.put_nowait(scheduler_pb2.SyncPiecesRequest(peer_id=self.peer_id, **fields))  # type: ignore[arg-type]

    def close(self) -> None:
        self.outgoing.put_nowait(None)
        self.call.cancel()


async def join(node: Running, port: int, location: str, **first: object) -> Stream:
    """A host at location (serving on port: each host its own address) registers, registers the task, and opens its
    stream with first's fields."""
    info = scheduler_pb2.HostInfo(hostname="h", ip="127.0.0.9", port=port, upload_slots=4, location=location)
    host_id = (await node.scheduler.RegisterHost(scheduler_pb2.RegisterHostRequest(host=info))).host_id
    meta = common_pb2.UrlMeta(url="http://127.0.0.1:9/layer", digest=DIGEST)
    peer_id = (
        await node.scheduler.RegisterTask(scheduler_pb2.RegisterTaskRequest(host_id=host_id, url_meta=meta))
    ).peer_id
    return Stream(node, scheduler_pb2.SyncPiecesRequest(peer_id=peer_id, **first))  # type: ignore[arg-type]


def parents_of(message: scheduler_pb2.SyncPiecesResponse) -> list[str]:
    return [a.parent.peer_id for a in message.assignments.assignments]


@pytest.mark.parametrize(("policy", "from_zone"), [("default", False), ("nearest", True)])
async def test_a_childs_parent_by_policy(tmp_path: Path, policy: str, from_zone: bool) -> None:
    metrics = free_port()
    config = make_config(
        tmp_path / "data", seed_peer=False, access_check=False, parent_policy=policy, metrics=f"127.0.0.1:{metrics}"
    )
    async with started(config) as node:
        assert node.node.swarm.scheduler.policy.name == policy
        origin = scheduler_pb2.OriginAnswer(content_length=len(BODY), piece_size=PIECE)
        reader = await join(node, 9001, "r1|z2", window=4, origin=origin)
        await reader.next_event("back_to_source")  # the first peer of content with a digest reads it for the swarm
        digests = [hashlib.sha256(BODY[n * PIECE : (n + 1) * PIECE]).hexdigest() for n in range(PIECES)]
        reader.send(
            results=[
                scheduler_pb2.PieceResult(piece_number=n, success=True, digest=f"sha256:{d}")
                for n, d in enumerate(digests)
            ]
        )

        peer = await join(node, 9002, "r1|z1", window=PIECES)
        assigned = parents_of(await peer.next_event("assignments"))
        assert set(assigned) == {reader.peer_id}
        peer.send(
            results=[
                scheduler_pb2.PieceResult(piece_number=n, success=True, parent_peer_id=reader.peer_id, duration_ms=20)
                for n in range(PIECES)
            ]
        )
        await asyncio.sleep(0.2)  # the reports applied
        crossed = len(assigned) * PIECE  # what was assigned of the four (the others are not counted)
        assert await delivered(metrics) == {"within_zone": 0, "between_zones": crossed, "no_zone": 0}

        child = await join(node, 9003, "r1|z1", window=1)
        (parent,) = parents_of(await child.next_event("assignments"))
        assert parent == (peer.peer_id if from_zone else reader.peer_id)
        for stream in (child, peer, reader):
            stream.close()


async def delivered(port: int) -> dict[str, int]:
    """dandelion_piece_bytes_delivered_total by path, scraped from the supernode's /metrics."""
    samples = await scrape(port)
    prefix = 'dandelion_piece_bytes_delivered_total{component="supernode",path="'
    return {name[len(prefix) : -2]: int(value) for name, value in samples.items() if name.startswith(prefix)}
