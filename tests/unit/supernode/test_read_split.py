"""A read of the origin for the swarm split between peers (supernode.read_split): a reader with much left hands the
second half to a peer that reads nothing, once the reader said it keeps to the first half, less what it read
meanwhile; each piece is read once. Driven by hand (no network)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from test_supernode_source_peer import (
    PIECE,
    REQUEST,
    Clock,
    assigned,
    drain,
    host,
    new_swarm,
    offered,
    piece_digest,
    reads_for_swarm,
)

from dfcommon.pieces import ranges_mask
from supernode.read_split import HANDOFF_WAIT_S, STALLED_S
from supernode.readers import OriginAnswer
from supernode.resource.peer import Peer, PeerState
from supernode.resource.piece import PieceReport
from supernode.resource.task import Task
from supernode.streams import GoToSource, StreamEvent
from supernode.swarm import Swarm

BIG = 32 * PIECE  # 32 pieces
Outbox = asyncio.Queue[StreamEvent]


def read_at_one_piece_a_second(swarm: Swarm, clock: Clock, peer_id: str, box: Any, count: int) -> None:
    """The reader answers (BIG) and offers pieces 0..count-1, one a second: its rate is timed from the first."""
    swarm.stream_update(peer_id, box, 0, [offered(0)], OriginAnswer(BIG, PIECE))
    for number in range(1, count):
        clock.now += 1
        swarm.stream_update(peer_id, box, 0, [offered(number)])


async def long_read(tmp_path: Path) -> tuple[Clock, Swarm, Task, Peer, Outbox]:
    """A reader that offered pieces 0..2 one a second (28 more would take it 28 s; what it was told so far is
    drained). Returns the clock, the swarm, the task, the reader and its outbox."""
    clock = Clock()
    swarm = new_swarm(tmp_path, clock)
    task, reader = await swarm.register_task(host(swarm, 2), REQUEST)
    reader_box = swarm.open_stream(reader.peer_id, 16, [])
    read_at_one_piece_a_second(swarm, clock, reader.peer_id, reader_box, 3)
    drain(reader_box)
    return clock, swarm, task, reader, reader_box


async def joined(tmp_path: Path) -> tuple[Clock, Swarm, Task, Peer, Outbox, Peer, Outbox]:
    """long_read, and a joiner whose stream opened: the second half was taken from the reader for the joiner. Returns
    the clock, the swarm, the task, the reader and its outbox, the joiner and its outbox."""
    clock, swarm, task, reader, reader_box = await long_read(tmp_path)
    _, joiner = await swarm.register_task(host(swarm, 3), REQUEST)
    return clock, swarm, task, reader, reader_box, joiner, swarm.open_stream(joiner.peer_id, 16, [])


def readers_say(swarm: Swarm, task: Task) -> None:
    """Every reader a part was taken from says it keeps to the rest (SyncPiecesRequest.read_ranges_applied)."""
    for owner_id in {handoff.owner_id for handoff in task.handoffs}:
        box = swarm.streams.queues[owner_id]
        swarm.stream_update(owner_id, box, 0, [], applied=ranges_mask(task.range_readers[owner_id]))


async def test_a_peer_that_joins_a_long_read_reads_its_second_half(tmp_path: Path) -> None:
    """One reader's uplink carries every piece at least once: a second peer that joins while most of the content is
    still to be read takes half of what is left (each piece still read once), and both fetch the rest from the
    swarm."""
    _clock, swarm, task, reader, reader_box, joiner, joiner_box = await joined(tmp_path)
    # The reader reads piece 3 now; 28 are left after it: it keeps 3..17, the joiner is to read 18..31 once the
    # reader says it keeps to 0..17 (having reported every piece it stored before).
    assert task.range_readers == {reader.peer_id: ((0, 17),)}
    assert task.source_peer_id == "" and reader.state is PeerState.RUNNING and joiner.state is PeerState.RUNNING
    told = drain(reader_box)
    assert reads_for_swarm(((0, 17),)) in told
    assert not any(isinstance(e, GoToSource) for e in drain(joiner_box)), "not before the reader said"
    swarm.stream_update(reader.peer_id, reader_box, 0, [], applied=ranges_mask(((0, 17),)))
    assert task.range_readers == {reader.peer_id: ((0, 17),), joiner.peer_id: ((18, 31),)}
    assert reads_for_swarm(((18, 31),)) in drain(joiner_box)

    # A piece each reads is its own: offered from there, with its digest.
    swarm.stream_update(joiner.peer_id, joiner_box, 0, [offered(18)])
    assert (18, joiner.peer_id, piece_digest(18)) in assigned(drain(reader_box)), "the reader fetches the joiner's"
    swarm.stream_update(reader.peer_id, reader_box, 0, [offered(3)])
    assert {n for n, _, _ in assigned(drain(joiner_box))} <= {0, 1, 2, 3}
    # Outside its range a reader's digest counts for nothing: it is a plain result.
    swarm.stream_update(joiner.peer_id, joiner_box, 0, [PieceReport(5, "", True, digest=piece_digest(99))])
    assert 5 not in task.pieces
    assert not any(n in range(18, 32) for n, _, _ in assigned(drain(joiner_box))), "never assigned what it reads"


async def test_a_part_taken_from_a_reader_goes_on_less_what_the_reader_had_read_by_then(tmp_path: Path) -> None:
    """A reader's reports lag behind its read: cut at 18, it had stored 18..21 before it heard. The joiner reads
    22..31 only, so no piece is read twice."""
    _clock, swarm, task, reader, reader_box, joiner, joiner_box = await joined(tmp_path)
    assert task.range_readers == {reader.peer_id: ((0, 17),)}
    swarm.stream_update(reader.peer_id, reader_box, 0, [offered(n) for n in range(3, 22)])
    swarm.stream_update(reader.peer_id, reader_box, 0, [], applied=ranges_mask(((0, 17),)))
    assert task.range_readers[joiner.peer_id] == ((22, 31),)
    assert reads_for_swarm(((22, 31),)) in drain(joiner_box)
    assert all(reader.holds(n) and task.pieces[n].digest == piece_digest(n) for n in range(18, 22)), (
        "what it read past the cut is offered with its digests: the others fetch it from the reader"
    )


async def test_a_part_goes_on_without_the_readers_word_after_a_while(tmp_path: Path) -> None:
    """A dfdaemon that never says (older than read_ranges_applied): the part goes on after HANDOFF_WAIT_S."""
    clock, swarm, task, _reader, _reader_box, joiner, _joiner_box = await joined(tmp_path)
    swarm.readers.tick()
    assert joiner.peer_id not in task.range_readers
    clock.now += HANDOFF_WAIT_S
    swarm.readers.tick()
    assert task.range_readers[joiner.peer_id] == ((18, 31),) and not task.handoffs


async def test_a_part_whose_reader_leaves_before_it_said_is_read_by_another(tmp_path: Path) -> None:
    _clock, swarm, task, reader, _reader_box, joiner, _joiner_box = await joined(tmp_path)
    swarm.leave_task(reader.peer_id)
    assert not task.handoffs
    assert task.range_readers == {joiner.peer_id: ((0, 31),)}, "every piece nobody holds now, by the one left"


async def test_a_read_is_split_only_while_enough_is_left_and_among_few_readers(tmp_path: Path) -> None:
    clock = Clock()
    swarm = new_swarm(tmp_path, clock)
    task, reader = await swarm.register_task(host(swarm, 2), REQUEST)
    reader_box = swarm.open_stream(reader.peer_id, 16, [])
    clock.now += 28
    done = [offered(n) for n in range(28)]
    swarm.stream_update(reader.peer_id, reader_box, 0, done, OriginAnswer(BIG, PIECE))
    _, late = await swarm.register_task(host(swarm, 3), REQUEST)
    swarm.open_stream(late.peer_id, 16, [])
    assert task.source_peer_id == reader.peer_id and not task.range_readers, "3 pieces left after 28: not split"

    clock2 = Clock()
    swarm2 = new_swarm(tmp_path / "2", clock2)
    task2, first = await swarm2.register_task(host(swarm2, 2), REQUEST)
    box = swarm2.open_stream(first.peer_id, 16, [])
    swarm2.stream_update(first.peer_id, box, 0, [], OriginAnswer(BIG, PIECE))
    for n in range(3, 9):
        _, peer = await swarm2.register_task(host(swarm2, n), REQUEST)
        swarm2.open_stream(peer.peer_id, 16, [])
    assert not task2.range_readers, "no split before the reader's rate is known"
    swarm2.stream_update(first.peer_id, box, 0, [offered(0)])  # the first offer starts the clock
    clock2.now += 1
    swarm2.stream_update(first.peer_id, box, 0, [offered(1)])
    assert not task2.range_readers, "no split before the reader's rate is known (from two pieces after the first)"
    clock2.now += 1
    swarm2.stream_update(first.peer_id, box, 0, [offered(2)])  # one piece a second: the rest would take 29 s
    readers_say(swarm2, task2)
    assert len(task2.range_readers) == 2
    for _ in range(12):  # each reader offers a piece a second: the one with most left is split, up to 4 readers
        clock2.now += 1
        for peer_id, ranges in list(task2.range_readers.items()):
            missing = (n for a, b in ranges for n in range(a, b + 1) if not task2.peers[peer_id].holds(n))
            if (first_missing := next(missing, None)) is not None:
                swarm2.stream_update(peer_id, swarm2.streams.queues[peer_id], 0, [offered(first_missing)])
                readers_say(swarm2, task2)
    assert len(task2.range_readers) == 4, "at most MAX_READERS read at once"
    covered = sorted(p for ranges in task2.range_readers.values() for a, b in ranges for p in range(a, b + 1))
    held = {n for n in range(32) if any(peer.holds(n) for peer in task2.peers.values())}
    assert len(set(covered)) == len(covered), "no piece is read by two readers"
    assert set(covered) | held == set(range(32)), "every piece is read (a reader done with its part took another)"


async def test_a_reader_that_offers_nothing_for_a_while_is_split_without_waiting_for_a_rate(tmp_path: Path) -> None:
    """A new reader whose connection to a busy origin stalls (a lost handshake is sent again after 1 s) offers
    nothing, so no offer prompts a split and it has no rate: after STALLED_S the timer splits it like a slow one."""
    clock = Clock()
    swarm = new_swarm(tmp_path, clock)
    task, reader = await swarm.register_task(host(swarm, 2), REQUEST)
    reader_box = swarm.open_stream(reader.peer_id, 16, [])
    swarm.stream_update(reader.peer_id, reader_box, 0, [], OriginAnswer(BIG, PIECE))  # answered, no piece yet
    _, joiner = await swarm.register_task(host(swarm, 3), REQUEST)
    joiner_box = swarm.open_stream(joiner.peer_id, 16, [])
    assert not task.range_readers and not task.handoffs, "no rate, and not silent for long yet"
    clock.now += STALLED_S - 0.1
    swarm.readers.tick()
    assert not task.range_readers and not task.handoffs
    clock.now += 0.1
    swarm.readers.tick()
    assert task.range_readers == {reader.peer_id: ((0, 15),)}, "it keeps the first half"
    assert reads_for_swarm(((0, 15),)) in drain(reader_box)
    readers_say(swarm, task)
    assert task.range_readers[joiner.peer_id] == ((16, 31),)
    assert reads_for_swarm(((16, 31),)) in drain(joiner_box)

    # The joiner's own part is timed from when it was told: silent as long, it is split in turn (to a third peer).
    _, third = await swarm.register_task(host(swarm, 4), REQUEST)
    third_box = swarm.open_stream(third.peer_id, 16, [])
    swarm.stream_update(reader.peer_id, reader_box, 0, [offered(0)])  # the reader's first piece: not silent now
    clock.now += STALLED_S
    swarm.readers.tick()
    readers_say(swarm, task)
    assert task.range_readers[joiner.peer_id] == ((16, 23),)
    assert task.range_readers[third.peer_id] == ((24, 31),)
    assert reads_for_swarm(((24, 31),)) in drain(third_box)
    assert task.range_readers[reader.peer_id] == ((0, 15),), "a reader that offered is timed by its rate"


async def test_a_fast_reader_that_goes_silent_is_split_by_the_timer(tmp_path: Path) -> None:
    """A reader whose origin body stalls midway offers nothing more: no offer prompts a split, and its rate looked
    fast. The timer's look counts the silence in its rate."""
    clock = Clock()
    swarm = new_swarm(tmp_path, clock)
    task, reader = await swarm.register_task(host(swarm, 2), REQUEST)
    reader_box = swarm.open_stream(reader.peer_id, 16, [])
    swarm.stream_update(reader.peer_id, reader_box, 0, [offered(0)], OriginAnswer(BIG, PIECE))
    for number in range(1, 16):  # 15 pieces in 0.5 s: the 15 after the one it reads now would take it 0.5 s
        clock.now += 0.5 / 15
        swarm.stream_update(reader.peer_id, reader_box, 0, [offered(number)])
    _, joiner = await swarm.register_task(host(swarm, 3), REQUEST)
    joiner_box = swarm.open_stream(joiner.peer_id, 16, [])
    swarm.readers.tick()
    assert not task.range_readers and not task.handoffs, "fast enough: not split"
    clock.now += 0.4  # silent since: 15 pieces after the first in 0.9 s, so 15 more would take 0.9 s
    swarm.readers.tick()
    assert not task.range_readers and not task.handoffs
    clock.now += 0.2  # 1.1 s
    swarm.readers.tick()
    readers_say(swarm, task)
    assert task.range_readers == {reader.peer_id: ((0, 23),), joiner.peer_id: ((24, 31),)}
    assert reads_for_swarm(((24, 31),)) in drain(joiner_box)


async def test_a_range_reader_that_leaves_hands_what_nobody_holds_to_another_reader(tmp_path: Path) -> None:
    _clock, swarm, task, reader, reader_box, joiner, joiner_box = await joined(tmp_path)
    readers_say(swarm, task)
    assert task.range_readers[joiner.peer_id] == ((18, 31),)
    swarm.stream_update(joiner.peer_id, joiner_box, 0, [offered(18), offered(19)])
    drain(reader_box)
    swarm.leave_task(joiner.peer_id)
    # Its pieces went with it, and nobody reads 17..31: the other reader reads them too.
    assert task.range_readers == {reader.peer_id: ((0, 31),)}
    assert reads_for_swarm(((0, 31),)) in drain(reader_box)


async def test_a_reader_that_read_its_part_takes_over_half_of_what_a_slower_reader_has_left(tmp_path: Path) -> None:
    clock = Clock()
    swarm = new_swarm(tmp_path, clock)
    task, first = await swarm.register_task(host(swarm, 2), REQUEST)
    first_box = swarm.open_stream(first.peer_id, 16, [])
    swarm.stream_update(first.peer_id, first_box, 0, [], OriginAnswer(BIG, PIECE))
    _, second = await swarm.register_task(host(swarm, 3), REQUEST)
    second_box = swarm.open_stream(second.peer_id, 16, [])
    for n in range(3):  # one piece a second: the rest would take 29 s
        swarm.stream_update(first.peer_id, first_box, 0, [offered(n)])
        clock.now += 1
    readers_say(swarm, task)
    assert task.range_readers == {first.peer_id: ((0, 17),), second.peer_id: ((18, 31),)}
    drain(first_box)

    swarm.stream_update(first.peer_id, first_box, 0, [offered(n) for n in range(3, 18)])  # read all of its part
    for n in (18, 19, 20):  # the second reads its part slowly, the only one reading, 10 pieces left
        swarm.stream_update(second.peer_id, second_box, 0, [offered(n)])
        clock.now += 1
    readers_say(swarm, task)
    assert task.range_readers[second.peer_id] == ((18, 26),)
    assert task.range_readers[first.peer_id] == ((27, 31),), "the reader that was done reads the second half"
    assert reads_for_swarm(((27, 31),)) in drain(first_box)


async def test_a_peer_whose_download_may_not_read_the_origin_is_never_made_a_reader(tmp_path: Path) -> None:
    """RegisterTaskRequest.no_back_source (dfget --no-back-source): the first peer of content with a digest reads
    it for the swarm, unless it may not; then the next peer that may reads, and the first fetches from it."""
    swarm = new_swarm(tmp_path, Clock())
    task, forbidden = await swarm.register_task(host(swarm, 2), REQUEST, reads=False)
    assert forbidden.state is PeerState.RUNNING and task.source_peer_id == ""
    forbidden_box = swarm.open_stream(forbidden.peer_id, 16, [])
    assert not any(isinstance(e, GoToSource) for e in drain(forbidden_box))
    _, reader = await swarm.register_task(host(swarm, 3), REQUEST)
    assert reader.state is PeerState.BACK_TO_SOURCE and task.source_peer_id == reader.peer_id
    assert not any(isinstance(e, GoToSource) for e in drain(forbidden_box))


async def test_no_part_of_a_read_is_handed_to_a_peer_that_may_not_read(tmp_path: Path) -> None:
    """A joiner that may not read the origin takes no half of a long read; one that may, joining next, does."""
    _clock, swarm, task, reader, _reader_box = await long_read(tmp_path)
    _, forbidden = await swarm.register_task(host(swarm, 3), REQUEST, reads=False)
    forbidden_box = swarm.open_stream(forbidden.peer_id, 16, [])
    assert not task.handoffs and list(task.range_readers) in ([], [reader.peer_id])
    _, joiner = await swarm.register_task(host(swarm, 4), REQUEST)
    swarm.open_stream(joiner.peer_id, 16, [])
    assert [h.newcomer_id for h in task.handoffs] == [joiner.peer_id]
    readers_say(swarm, task)
    assert forbidden.peer_id not in task.range_readers and joiner.peer_id in task.range_readers
    assert not any(isinstance(e, GoToSource) for e in drain(forbidden_box))
