"""origin_fetch "peer": a peer reads the origin for the swarm and each piece it stores is offered at once.

Driven by hand (no network): these tests pin down who is told to read the origin, that
the other peers get each piece the moment its reader reports it, with the reader's digest, and what happens when
the reader leaves, fails or gave digests that the content does not match.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pytest

from dfcommon.content import ContentRequest
from dfcommon.errors import InvalidArgument
from supernode.config import SupernodeConfig
from supernode.hosts import HostSpec
from supernode.readers import OriginAnswer
from supernode.resource.peer import PeerState
from supernode.resource.piece import PieceReport
from supernode.streams import Assigned, GoToSource, StreamEvent, TaskChanged
from supernode.swarm import Swarm

DIGEST = "sha256:" + hashlib.sha256(b"layer").hexdigest()
REQUEST = ContentRequest(url="http://registry/v2/ns/img/blobs/" + DIGEST, headers={"Authorization": "x"}, digest=DIGEST)
MIB = 1 << 20
LENGTH, PIECE = 10 * MIB, 4 * MIB  # three pieces


def reads_for_swarm(ranges: tuple[tuple[int, int], ...], base: int = 4 * MIB) -> GoToSource:
    """What a reader is told: read the origin for the swarm (ranges; none: all it lacks), cut at the base piece size
    (default: a fleet of one host, base_for_fleet)."""
    return GoToSource("this peer reads the origin for the swarm", True, "blake3", ranges, base)


def piece_digest(number: int) -> str:
    return "blake3:" + hashlib.sha256(b"%d" % number).hexdigest()


class Clock:
    """Time that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def new_swarm(tmp_path: Path, clock: Clock | None = None, **config: Any) -> Swarm:
    return Swarm(SupernodeConfig(data_dir=tmp_path, advertise_ip="127.0.0.1", **config), clock or Clock())


def host(swarm: Swarm, n: int) -> str:
    return swarm.register_host(HostSpec(f"h{n}", f"127.0.0.{n}", 65000 + n, 4, ""))


def drain(outbox: asyncio.Queue[StreamEvent]) -> list[StreamEvent]:
    events = []
    while not outbox.empty():
        events.append(outbox.get_nowait())
    return events


def assigned(events: list[StreamEvent]) -> list[tuple[int, str, str]]:
    """(piece, parent peer id, digest) of every assignment among the events."""
    return [
        (a.piece.number, a.parent.peer_id, a.piece.digest)
        for e in events
        if isinstance(e, Assigned)
        for a in e.assignments
    ]


def offered(number: int) -> PieceReport:
    return PieceReport(number, "", True, digest=piece_digest(number))


async def test_the_first_peer_reads_the_origin_and_the_others_get_each_piece_as_it_is_stored(tmp_path: Path) -> None:
    swarm = new_swarm(tmp_path)
    task, reader = await asyncio.wait_for(swarm.register_task(host(swarm, 2), REQUEST), 1)
    assert reader.state is PeerState.BACK_TO_SOURCE and task.source_peer_id == reader.peer_id
    reader_box = swarm.open_stream(reader.peer_id, 16, [])
    told = drain(reader_box)
    assert isinstance(told[0], TaskChanged)
    assert told[1] == reads_for_swarm(())

    # The next peer registers at once, before the origin even answered: it waits on its stream.
    task2, other = await asyncio.wait_for(swarm.register_task(host(swarm, 3), REQUEST), 1)
    assert other.state is PeerState.RUNNING and task2.content_length == -1
    other_box = swarm.open_stream(other.peer_id, 16, [])
    assert [type(e) for e in drain(other_box)] == [TaskChanged]

    swarm.stream_update(reader.peer_id, reader_box, 0, [], OriginAnswer(LENGTH, PIECE))
    news = drain(other_box)
    assert isinstance(news[0], TaskChanged) and task.content_length == LENGTH and task.piece_count == 3
    swarm.stream_update(reader.peer_id, reader_box, 0, [offered(0)])
    assert assigned(drain(other_box)) == [(0, reader.peer_id, piece_digest(0))], "piece 0 is offered at once"
    swarm.stream_update(other.peer_id, other_box, 0, [PieceReport(0, reader.peer_id, True)])
    swarm.stream_update(reader.peer_id, reader_box, 0, [offered(1), offered(2)])
    got = sorted(assigned(drain(other_box)))
    assert got == [(1, reader.peer_id, piece_digest(1)), (2, reader.peer_id, piece_digest(2))]
    assert task.authors == {reader.peer_id}
    assert not assigned(drain(reader_box)), "the reader is given nothing to fetch"


async def test_a_piece_reported_before_the_origin_answer_waits_for_it_and_bad_reports_are_refused(
    tmp_path: Path,
) -> None:
    swarm = new_swarm(tmp_path)
    task, reader = await swarm.register_task(host(swarm, 2), REQUEST)
    box = swarm.open_stream(reader.peer_id, 16, [])
    swarm.stream_update(reader.peer_id, box, 0, [offered(0)])  # held before it read: offered with the answer
    assert 0 not in task.pieces
    with pytest.raises(InvalidArgument):
        swarm.stream_update(reader.peer_id, box, 0, [], OriginAnswer(LENGTH, 1000))  # piece size out of range
    swarm.stream_update(reader.peer_id, box, 0, [], OriginAnswer(LENGTH, PIECE))
    with pytest.raises(InvalidArgument):
        swarm.stream_update(reader.peer_id, box, 0, [offered(3)])  # beyond the last piece
    with pytest.raises(InvalidArgument):
        swarm.stream_update(reader.peer_id, box, 0, [PieceReport(0, "", True, digest="md5:abc")])


async def test_digests_from_a_peer_that_is_not_the_reader_never_replace_the_readers(tmp_path: Path) -> None:
    """A peer that is no reader gives digests only for pieces it carries in when it opens its stream (see
    test_carried_pieces.py), and only for pieces with no digest here; later reports' digests are ignored."""
    swarm = new_swarm(tmp_path)
    task, reader = await swarm.register_task(host(swarm, 2), REQUEST)
    reader_box = swarm.open_stream(reader.peer_id, 16, [])
    swarm.stream_update(reader.peer_id, reader_box, 0, [offered(1)], OriginAnswer(LENGTH, PIECE))
    _, liar = await swarm.register_task(host(swarm, 3), REQUEST)
    liar_box = swarm.open_stream(liar.peer_id, 16, [PieceReport(1, "", True, digest=piece_digest(9))])
    assert task.pieces[1].digest == piece_digest(1) and task.authors == {reader.peer_id}
    swarm.stream_update(liar.peer_id, liar_box, 0, [PieceReport(2, "", True, digest=piece_digest(9))])
    assert 2 not in task.pieces and task.authors == {reader.peer_id}


async def test_a_reader_that_leaves_is_replaced_by_the_peer_that_lacks_the_fewest_pieces(tmp_path: Path) -> None:
    swarm = new_swarm(tmp_path)
    task, reader = await swarm.register_task(host(swarm, 2), REQUEST)
    reader_box = swarm.open_stream(reader.peer_id, 16, [])
    swarm.stream_update(reader.peer_id, reader_box, 0, [offered(0)], OriginAnswer(LENGTH, PIECE))
    _, second = await swarm.register_task(host(swarm, 3), REQUEST)
    second_box = swarm.open_stream(second.peer_id, 16, [])
    _, third = await swarm.register_task(host(swarm, 4), REQUEST)
    third_box = swarm.open_stream(third.peer_id, 16, [])
    swarm.stream_update(second.peer_id, second_box, 0, [PieceReport(0, reader.peer_id, True)])
    drain(second_box), drain(third_box)

    swarm.leave_task(reader.peer_id)
    # It reads what nobody holds (piece 0 is its own already) and keeps fetching the rest from the swarm.
    assert task.range_readers == {second.peer_id: ((1, 2),)} and second.state is PeerState.RUNNING
    assert reads_for_swarm(((1, 2),)) in drain(second_box)
    assert not any(isinstance(e, GoToSource) for e in drain(third_box))
    swarm.stream_update(second.peer_id, second_box, 0, [offered(1)])
    assert (1, second.peer_id, piece_digest(1)) in assigned(drain(third_box))


async def test_a_failed_reader_hands_the_origin_to_the_next_peer_to_register(tmp_path: Path) -> None:
    swarm = new_swarm(tmp_path)
    task, reader = await swarm.register_task(host(swarm, 2), REQUEST)
    swarm.report_result(reader.peer_id, False, "origin returned HTTP 500", 0, 0, 1)
    assert task.source_peer_id == ""
    _, second = await swarm.register_task(host(swarm, 3), REQUEST)
    assert task.source_peer_id == second.peer_id and second.state is PeerState.BACK_TO_SOURCE


async def test_a_finished_reader_keeps_serving_and_no_one_reads_the_origin_again(tmp_path: Path) -> None:
    swarm = new_swarm(tmp_path)
    _task, reader = await swarm.register_task(host(swarm, 2), REQUEST)
    box = swarm.open_stream(reader.peer_id, 16, [])
    swarm.stream_update(reader.peer_id, box, 0, [offered(0), offered(1), offered(2)], OriginAnswer(LENGTH, PIECE))
    swarm.report_result(reader.peer_id, True, "", 0, LENGTH, 1)
    swarm.close_stream(reader.peer_id, box)
    _, late = await swarm.register_task(host(swarm, 3), REQUEST)
    assert late.state is PeerState.RUNNING
    late_box = swarm.open_stream(late.peer_id, 16, [])
    first = sorted(n for n, _, _ in assigned(drain(late_box)))
    assert first == [0, 1], "two pieces at once from a parent whose upload rate is not known yet"
    swarm.stream_update(late.peer_id, late_box, 0, [PieceReport(n, reader.peer_id, True) for n in first])
    assert [n for n, _, _ in assigned(drain(late_box))] == [2]


async def test_content_that_does_not_match_its_digest_distrusts_the_reader(tmp_path: Path) -> None:
    swarm = new_swarm(tmp_path)
    task, reader = await swarm.register_task(host(swarm, 2), REQUEST)
    reader_box = swarm.open_stream(reader.peer_id, 16, [])
    _, consumer = await swarm.register_task(host(swarm, 3), REQUEST)
    consumer_box = swarm.open_stream(consumer.peer_id, 16, [])
    _, waiting = await swarm.register_task(host(swarm, 4), REQUEST)
    waiting_box = swarm.open_stream(waiting.peer_id, 1, [])
    swarm.stream_update(
        reader.peer_id, reader_box, 0, [offered(0), offered(1), offered(2)], OriginAnswer(LENGTH, PIECE)
    )
    swarm.stream_update(consumer.peer_id, consumer_box, 0, [PieceReport(n, reader.peer_id, True) for n in range(3)])
    drain(waiting_box)

    swarm.report_result(consumer.peer_id, False, "digest mismatch", LENGTH, 0, 1, digest_mismatch=True)
    assert not task.pieces and not task.authors, "no piece is offered with the liar's digests"
    assert reader.peer_id in task.bad_parents
    events = drain(waiting_box)
    assert any(isinstance(e, GoToSource) and not e.offer for e in events), "the others fetch the origin themselves"
    assert waiting.state is PeerState.BACK_TO_SOURCE
    # A new download from the liar's host is never chosen to read the origin, nor as a parent.
    _, again = await swarm.register_task(host(swarm, 2), REQUEST)
    assert again.state is PeerState.RUNNING and again.peer_id in task.bad_parents
    _, honest = await swarm.register_task(host(swarm, 5), REQUEST)
    assert task.source_peer_id == honest.peer_id


async def test_content_without_a_digest_and_no_seed_peer_is_read_by_each_peer_for_itself(tmp_path: Path) -> None:
    """Only a seed peer's piece digests are trusted without a whole digest to check them against: with none up,
    no peer reads such content for the swarm, and each is sent to the origin when its stream opens."""
    swarm = new_swarm(tmp_path)
    plain = ContentRequest(url="http://origin/file.bin")
    task, first = await swarm.register_task(host(swarm, 2), plain)
    _, second = await swarm.register_task(host(swarm, 3), plain)
    assert first.state is PeerState.RUNNING and task.source_peer_id == "" and not task.range_readers
    for peer in (first, second):
        events = drain(swarm.open_stream(peer.peer_id, 16, []))
        assert any(isinstance(e, GoToSource) and not e.offer for e in events)
        assert peer.state is PeerState.BACK_TO_SOURCE
    report = PieceReport(0, "", True, digest=piece_digest(0))
    swarm.stream_update(first.peer_id, swarm.streams.queues[first.peer_id], 0, [report], OriginAnswer(LENGTH, PIECE))
    assert not task.pieces, "a plain peer's digests are never offered for content without a digest"


async def test_a_reader_whose_own_content_did_not_match_leaves_no_digest_behind(tmp_path: Path) -> None:
    """The origin sent the reader other bytes (a corrupted registry): its digests must not outlive it, or the next
    reader's good pieces would be checked against them."""
    swarm = new_swarm(tmp_path)
    task, reader = await swarm.register_task(host(swarm, 2), REQUEST)
    box = swarm.open_stream(reader.peer_id, 16, [])
    swarm.stream_update(reader.peer_id, box, 0, [offered(0), offered(1), offered(2)], OriginAnswer(LENGTH, PIECE))
    swarm.report_result(reader.peer_id, False, "digest mismatch", 0, LENGTH, 1, digest_mismatch=True)
    assert not task.pieces and not task.bad_hosts, "an honest reader of a bad origin is not distrusted"
    _, second = await swarm.register_task(host(swarm, 2), REQUEST)
    assert task.source_peer_id == second.peer_id
    second_box = swarm.open_stream(second.peer_id, 16, [])
    good = PieceReport(0, "", True, digest=piece_digest(7))
    swarm.stream_update(second.peer_id, second_box, 0, [good], OriginAnswer(LENGTH, PIECE))
    assert task.pieces[0].digest == piece_digest(7)


@pytest.mark.parametrize(
    ("hosts", "flag", "base"),
    [
        (2, 0, MIB // 2),
        (16, 0, MIB // 2),
        (17, 0, MIB),
        (33, 0, 2 * MIB),
        (64, 0, 2 * MIB),
        (65, 0, 4 * MIB),
        (300, 0, 4 * MIB),
        (2, 4 * MIB, 4 * MIB),
        (300, MIB, MIB),
    ],
)
async def test_the_reader_cuts_at_a_base_that_grows_with_the_fleet_unless_piece_size_is_set(
    tmp_path: Path, hosts: int, flag: int, base: int
) -> None:
    swarm = new_swarm(tmp_path, piece_size=flag, max_hosts=1000)
    for n in range(hosts - 1):  # the fleet beside the reader's host
        swarm.register_host(HostSpec(f"f{n}", f"127.1.{n // 250}.{n % 250 + 1}", 65000, 4, ""))
    _, reader = await asyncio.wait_for(swarm.register_task(host(swarm, 2), REQUEST), 1)
    assert len(swarm.scheduler.registry.hosts) == hosts
    told = drain(swarm.open_stream(reader.peer_id, 16, []))
    assert told[1] == reads_for_swarm((), base)
