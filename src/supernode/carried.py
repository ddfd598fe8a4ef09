"""Pieces a peer carries into a task here: it opens its stream holding pieces, with the digests it checked them
against, that no author has offered here. It moved from a supernode that stopped answering (its readers' pieces
are the swarm's; without them the reader here would read them from the origin again), or it restarted.

For content with a digest (every consumer checks it whole, and a mismatch distrusts the authors, this peer among
them), or from a seed peer, those pieces are offered as the peer's own, and whoever reads the origin for the swarm
here reads only what nobody holds from then on. A peer that comes before the content's length is known here (the
reader's answer) has its pieces kept on the task (Task.carried) until it is.
"""

from __future__ import annotations

import logging

from dfcommon import piecedigest
from dfcommon.pieces import mask_ranges, ranges_mask
from supernode.readers import Readers
from supernode.resource.peer import Peer, PeerState
from supernode.resource.piece import PieceReport
from supernode.resource.task import Task

log = logging.getLogger(__name__)

# Pieces kept per peer until the length is known: content is cut into at most a few thousand pieces
# (dfcommon.pieces.TARGET_MAX_PIECES), so a peer claiming more gives nothing worth keeping in memory.
KEPT_MAX = 4096


def adopt(readers: Readers, task: Task, peer: Peer, reports: list[PieceReport]) -> list[PieceReport]:
    """Offer the peer's held pieces that have no digest here as authored by it, then narrow the readers' reads;
    returns the reports left for the scheduler (all of them when the peer may not author)."""
    trusted = (
        readers.may_read(task, peer.host)
        and peer.host.address not in task.bad_hosts
        and peer.peer_id not in task.bad_parents
    )
    if not trusted:
        return reports
    if not task.length_known or task.piece_size <= 0:  # kept until the reader's answer gives the content's shape
        kept = [r for r in reports if r.success and not r.parent_id and r.digest]
        if 0 < len(kept) <= KEPT_MAX:
            task.carried[peer.peer_id] = kept
        return reports
    scheduler = readers.scheduler
    offered = []
    others = []
    adopted = 0
    for report in reports:
        number = report.number
        if (
            not report.success
            or report.parent_id
            or not report.digest
            or number >= task.piece_count
            or number in task.pieces
            or piecedigest.parse(report.digest) is None
        ):
            others.append(report)
            continue
        offered.extend(scheduler.piece_authored(task, peer, task.piece_meta(number, report.digest)))
        adopted |= 1 << number
    if adopted:
        log.info(
            "task=%s peer=%s: carries %d pieces no author offered here; offered as its own",
            task.task_id[:12],
            peer.peer_id[:12],
            adopted.bit_count(),
        )
        readers.streams.deliver(offered)
        narrow(readers, task, adopted)
    return others


def shaped(readers: Readers, task: Task) -> None:
    """The task's length is known now: the pieces peers carried in before (and still hold) are offered as theirs.
    They are held already, so this wakes no starved peer; the reader's own pieces, offered with its answer, do."""
    if not task.length_known:
        return
    pending, task.carried = task.carried, {}
    for peer_id, reports in pending.items():
        peer = task.peers.get(peer_id)
        if peer is not None and peer.state is PeerState.RUNNING:
            adopt(readers, task, peer, [report for report in reports if peer.holds(report.number)])


def narrow(readers: Readers, task: Task, held: int) -> None:
    """Pieces of the bitmask held are held now: whoever reads them from the origin for the swarm stops (a reader of
    all it lacks reads what is unread; a reader of ranges, its ranges without them). A reader left with nothing
    to read goes on as it was (ranges of none would mean all it lacks)."""
    whole = readers.source(task)
    if whole is not None and task.reads_all(whole):
        lacking = ranges_mask(((0, task.piece_count - 1),)) & ~whole.held
        if (unread := readers.unread(task, whole.peer_id)) and unread != lacking:
            readers.read_ranges(task, whole, mask_ranges(unread))
    for peer_id, ranges in list(task.range_readers.items()):
        reader = task.peers.get(peer_id)
        mine = ranges_mask(ranges)
        if reader is not None and mine & held and (left := mine & ~held):
            readers.read_ranges(task, reader, mask_ranges(left))
