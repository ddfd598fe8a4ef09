"""A peer that opens its stream holding pieces no author offered here (it moved from a supernode that stopped
answering, or restarted): for content with a digest its pieces are offered as its own, and the reader here stops
reading them from the origin (driven by hand, no network)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from swarm_builder import Clock

from dfcommon.content import ContentRequest
from supernode.config import SupernodeConfig
from supernode.hosts import HostSpec
from supernode.readers import OriginAnswer
from supernode.resource.peer import PeerState
from supernode.resource.piece import PieceReport
from supernode.streams import Assigned, GoToSource, StreamEvent
from supernode.swarm import Swarm

DIGEST = "sha256:" + hashlib.sha256(b"layer").hexdigest()
REQUEST = ContentRequest(url="http://registry/v2/ns/img/blobs/" + DIGEST, digest=DIGEST)
PIECE = 4 << 20
LENGTH = 8 * PIECE


def piece_digest(number: int, author: str = "reader") -> str:
    return "blake3:" + hashlib.sha256(b"%s %d" % (author.encode(), number)).hexdigest()


def held(numbers: list[int], author: str) -> list[PieceReport]:
    """A stream's first message: pieces held, each with the digest it was checked against."""
    return [PieceReport(n, "", True, digest=piece_digest(n, author)) for n in numbers]


def drain(outbox: asyncio.Queue[StreamEvent]) -> list[StreamEvent]:
    events = []
    while not outbox.empty():
        events.append(outbox.get_nowait())
    return events


def told_ranges(events: list[StreamEvent]) -> list[tuple[tuple[int, int], ...]]:
    return [e.ranges for e in events if isinstance(e, GoToSource)]


async def started(tmp_path: Path) -> tuple[Swarm, str, asyncio.Queue[StreamEvent]]:
    """A swarm whose reader answered (8 pieces) and offered pieces 0 and 1; returns the reader's peer id and box."""
    swarm = Swarm(SupernodeConfig(data_dir=tmp_path, advertise_ip="127.0.0.1"), Clock())
    host = swarm.register_host(HostSpec("reader", "127.0.0.2", 65002, 4, ""))
    _, reader = await asyncio.wait_for(swarm.register_task(host, REQUEST), 1)
    box = swarm.open_stream(reader.peer_id, 16, [])
    swarm.stream_update(reader.peer_id, box, 0, [], OriginAnswer(LENGTH, PIECE))
    swarm.stream_update(reader.peer_id, box, 0, held([0, 1], "reader"))
    drain(box)
    return swarm, reader.peer_id, box


async def join(swarm: Swarm, n: int, pieces: list[int]) -> tuple[str, asyncio.Queue[StreamEvent]]:
    host = swarm.register_host(HostSpec(f"h{n}", f"127.0.0.{n}", 65000 + n, 4, ""))
    _, peer = await asyncio.wait_for(swarm.register_task(host, REQUEST), 1)
    return peer.peer_id, swarm.open_stream(peer.peer_id, 16, held(pieces, f"h{n}"))


async def test_pieces_carried_in_are_offered_and_no_longer_read_from_the_origin(tmp_path: Path) -> None:
    swarm, reader_id, reader_box = await started(tmp_path)
    task = next(iter(swarm.scheduler.tasks.values()))
    moved, _ = await join(swarm, 3, [0, 4, 5])  # piece 0 has the reader's digest already
    assert {n: task.pieces[n].digest for n in (0, 4, 5)} == {
        0: piece_digest(0, "reader"),
        4: piece_digest(4, "h3"),
        5: piece_digest(5, "h3"),
    }
    assert task.authors == {reader_id, moved}
    # The reader read all it lacked: now only what nobody holds, and it fetches 4 and 5 from the swarm.
    events = drain(reader_box)
    assert told_ranges(events) == [((2, 3), (6, 7))]
    assert task.range_readers == {reader_id: ((2, 3), (6, 7))} and task.source_peer_id == ""
    fetches = {
        (a.piece.number, a.parent.peer_id, a.piece.digest)
        for e in events
        if isinstance(e, Assigned)
        for a in e.assignments
    }
    assert fetches == {(4, moved, piece_digest(4, "h3")), (5, moved, piece_digest(5, "h3"))}
    assert swarm.scheduler.peers[reader_id].state is PeerState.RUNNING
    # Another peer carrying pieces someone offered already changes nothing.
    await join(swarm, 5, [4, 5])
    assert task.pieces[4].digest == piece_digest(4, "h3") and not told_ranges(drain(reader_box))


async def test_a_distrusted_host_carries_nothing_in(tmp_path: Path) -> None:
    swarm, _, reader_box = await started(tmp_path)
    task = next(iter(swarm.scheduler.tasks.values()))
    task.bad_hosts.add("127.0.0.3:65003")  # its content did not match the digest before
    await join(swarm, 3, [4, 5])
    assert 4 not in task.pieces and 5 not in task.pieces
    assert not told_ranges(drain(reader_box)), "the reader still reads all it lacks"


async def test_pieces_carried_in_before_the_length_is_known_are_offered_once_it_is(tmp_path: Path) -> None:
    swarm = Swarm(SupernodeConfig(data_dir=tmp_path, advertise_ip="127.0.0.1"), Clock())
    host = swarm.register_host(HostSpec("reader", "127.0.0.2", 65002, 4, ""))
    task, reader = await asyncio.wait_for(swarm.register_task(host, REQUEST), 1)
    reader_box = swarm.open_stream(reader.peer_id, 16, [])
    moved, _ = await join(swarm, 3, [4, 5])  # here before the reader's answer: the length is not known yet
    assert not task.pieces and task.authors == set()
    swarm.stream_update(reader.peer_id, reader_box, 0, held([0, 1], "reader"), OriginAnswer(LENGTH, PIECE))
    assert {n: task.pieces[n].digest for n in (4, 5)} == {4: piece_digest(4, "h3"), 5: piece_digest(5, "h3")}
    assert task.authors == {reader.peer_id, moved} and not task.carried
    assert told_ranges(drain(reader_box))[-1] == ((2, 3), (6, 7))
