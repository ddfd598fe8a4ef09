"""When a read of the origin for the swarm is split, and who reads the second half (Readers.split calls split).

A reader with much left hands the second half of it to a peer that reads nothing now: each piece is still read
once, and the origin's bandwidth is used by more uplinks. A reader that is done with its part may take over half
of another's: a reader left alone reads faster than its uplink alone can pass the pieces on (8 hosts on 50 Mbit/s
uplinks, 256 MiB: one host read half of it alone at the end, and from then on its uplink was the swarm's).

The reader is told first; the other peer gets the part (a Handoff) once the reader says it keeps to the rest, less
the pieces it read meanwhile. The pieces a reader reports lag behind its read, most on a loaded host, and a part
handed on at once was read twice (a seed peer cut at piece 25 of 49 had read 43 by the time it heard).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dfcommon.pieces import mask_ranges, ranges_mask
from supernode.resource.peer import READ_RATE_PIECES, Peer, PeerState
from supernode.resource.task import Handoff, Task

if TYPE_CHECKING:
    from supernode.readers import Readers

# Peers reading one task's origin at once, each its own part: one reader's uplink carries every piece at least
# once, so with hosts slower than the origin one reader bounds the swarm (bench/swarm_bounds.py); a few readers of
# disjoint parts use the origin's bandwidth in full, each piece still read once.
MAX_READERS = 4
# Pieces a reader must have left after the one it reads now before another peer takes half of them over, and
# the time they would take it at its rate so far: a fast origin is read before a split could gain anything, and
# what is in flight when a reader leaves its body is read twice.
SPLIT_MIN = 4
SPLIT_MIN_S = 1.0
SPLIT_MIN_BYTES = 8 << 20  # and at least this much of them: less is read before a second reader would gain much
# A reader that offered nothing this long after it was told to read is split as if its first piece came now: a new
# connection to an origin whose uplink is full can wait 1 s and more for a lost handshake to be sent again, and it
# would hold its part (and a place among MAX_READERS) while the origin has bandwidth to spare.
STALLED_S = 1.0
# How long a part taken from a reader waits for the reader's word before it is handed on anyway (a dfdaemon older
# than read_ranges_applied never says; one whose stream broke says on its next stream, or is replaced).
HANDOFF_WAIT_S = 2.0


def left_to_read(task: Task, peer: Peer) -> int:
    """The pieces of the peer's ranges it does not hold yet (a bitmask; 0: it reads no ranges, or read them)."""
    return ranges_mask(task.range_readers.get(peer.peer_id, ())) & ~peer.held


def can_read(readers: Readers, task: Task, peer: Peer) -> bool:
    """True when the peer may take over part of the task's read now: connected, running, reading no part."""
    return (
        peer.state is PeerState.RUNNING
        and not left_to_read(task, peer)
        and peer.peer_id in readers.streams
        and peer.host.address not in task.bad_hosts
        and not peer.host.unreachable
        and readers.may_read(task, peer.host, peer.reads)
        and not any(handoff.newcomer_id == peer.peer_id for handoff in task.handoffs)
    )


def split(readers: Readers, task: Task, newcomer: Peer | None = None) -> None:
    """When a reader has at least SPLIT_MIN pieces left after the one it reads now, taking it SPLIT_MIN_S or more at
    its rate so far, a connected peer reading nothing now (newcomer, else a reader done with its part, else any)
    reads the second half; at most MAX_READERS read at once."""
    if not task.length_known or not readers.swarm_reads(task):
        return
    busy = sum(1 for peer_id in task.range_readers if (p := task.peers.get(peer_id)) and left_to_read(task, p))
    if busy + len(task.handoffs) + (1 if task.source_peer_id else 0) >= MAX_READERS:
        return
    best = _slowest(readers, task)
    if best is None:
        return
    if newcomer is None:
        done = (task.peers.get(peer_id) for peer_id in task.range_readers)
        newcomer = next((p for p in done if p is not None and can_read(readers, task, p)), None)
    if newcomer is None:
        newcomer = next((p for p in task.peers.values() if can_read(readers, task, p)), None)
    if newcomer is None or not can_read(readers, task, newcomer) or task.source_peer_id == newcomer.peer_id:
        return
    left, owner, ranges = best
    first, last = ranges[-1]
    reading_now = last - left
    cut = (reading_now + last + 2) // 2  # the owner keeps reading_now..cut-1, the newcomer reads cut..last
    task.handoffs.append(Handoff(owner.peer_id, newcomer.peer_id, cut, last, readers.scheduler.clock()))
    readers.read_ranges(task, owner, (*ranges[:-1], (first, cut - 1)))


def applied(readers: Readers, task: Task, owner: Peer, mask: int) -> None:
    """The owner keeps to the pieces in mask now, and reported every piece it stored: the parts taken from it that
    lie outside mask go on."""
    for handoff in [h for h in task.handoffs if h.owner_id == owner.peer_id]:
        if not mask & handoff.mask:
            hand_on(readers, task, handoff)


def hand_on(readers: Readers, task: Task, handoff: Handoff) -> None:
    """The part goes to its newcomer (else to whoever Readers.replace chooses), less the pieces its owner holds."""
    task.handoffs.remove(handoff)
    owner = task.peers.get(handoff.owner_id)
    part = handoff.mask & ~(owner.held if owner is not None else 0)
    if not part:
        return
    newcomer = task.peers.get(handoff.newcomer_id)
    if newcomer is not None and can_read(readers, task, newcomer):
        readers.read_ranges(task, newcomer, mask_ranges(part))
    else:
        readers.replace(task.task_id)


def overdue(readers: Readers, task: Task) -> None:
    """Parts whose owner has not said for HANDOFF_WAIT_S go on."""
    now = readers.scheduler.clock()
    for handoff in [h for h in task.handoffs if now - h.since >= HANDOFF_WAIT_S]:
        hand_on(readers, task, handoff)


def _slowest(readers: Readers, task: Task) -> tuple[int, Peer, tuple[tuple[int, int], ...]] | None:
    """(pieces left, reader, its ranges) of the reader whose part would take longest, if worth splitting."""
    now = readers.scheduler.clock()
    best: tuple[float, int, Peer, tuple[tuple[int, int], ...]] | None = None
    whole = task.peers.get(task.source_peer_id) if task.source_peer_id else None
    reading: list[tuple[Peer | None, tuple[tuple[int, int], ...]]] = []
    if whole is not None and task.reads_all(whole):
        reading.append((whole, ((0, task.piece_count - 1),)))
    reading += [(task.peers.get(peer_id), ranges) for peer_id, ranges in task.range_readers.items() if ranges]
    for peer, ranges in reading:
        if peer is None:
            continue
        first, last = ranges[-1]
        left = last - max(first, (peer.held & ranges_mask(((first, last),))).bit_length())
        seconds = _seconds_left(peer, left, now)
        big = left >= SPLIT_MIN and left * task.piece_size >= SPLIT_MIN_BYTES
        if big and seconds is not None and seconds >= SPLIT_MIN_S and (best is None or seconds > best[0]):
            best = (seconds, left, peer, ranges)
    return None if best is None else best[1:]


def _seconds_left(peer: Peer, left: int, now: float) -> float | None:
    """How long the reader would take to read `left` more pieces: at its rate so far, timed up to now (one that went
    silent is the slower the longer it is), or, when it offered nothing STALLED_S after it was told to read, at one
    piece in all that time (None: no rate yet)."""
    if peer.read_since and peer.read_pieces >= READ_RATE_PIECES and now > peer.read_since:
        return left * (now - peer.read_since) / peer.read_pieces
    if _silent(peer, now):
        assert peer.read_told is not None
        return left * (now - peer.read_told)
    return None


def _silent(peer: Peer, now: float) -> bool:
    """True when the reader has offered nothing since it was told to read, STALLED_S or longer ago."""
    return not peer.read_since and peer.read_told is not None and now - peer.read_told >= STALLED_S
