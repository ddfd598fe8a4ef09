"""Who reads the origin for the swarm: a seed peer (supernode.seed_peers) when one is up, else for content with a
digest the first peer that asks (see SupernodeConfig.origin_fetch). Content without a digest that no seed peer
can read is read by each of its peers for itself: only a seed peer's piece digests are trusted without a whole
digest to check them against.

The task's reader (Task.source_peer_id) is told so on its stream; it reports the origin's answer and each piece it
stored with its digest, and each such piece is offered to the swarm at once. A reader that leaves is replaced by the
connected peer that lacks the fewest pieces; when a consumer's whole content did not match the digest although
every piece matched, the task's authors are distrusted. See docs/protocol.md, "Who fetches the origin".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from dfcommon import piecedigest
from dfcommon.content import ContentRequest
from dfcommon.errors import InvalidArgument
from dfcommon.pieces import MAX_PIECE_SIZE, base_for_fleet, mask_ranges, piece_count, ranges_mask
from supernode import read_split
from supernode.config import SupernodeConfig
from supernode.resource.host import Host
from supernode.resource.peer import Peer, PeerState
from supernode.resource.piece import PieceReport
from supernode.resource.states import move_task
from supernode.resource.task import Task, TaskState
from supernode.scheduling.scheduler import Scheduler
from supernode.seed_peers import SeedPeers
from supernode.streams import GoToSource, Outboxes

log = logging.getLogger(__name__)

# Bounds a peer's bitmask when the content length is not yet known.
MAX_PIECE_NUMBER = 1 << 20
# Piece sizes a peer reading the origin for the swarm may cut the content into.
MIN_AUTHOR_PIECE_SIZE = 64 * 1024


@dataclass(frozen=True)
class OriginAnswer:
    """What the origin answered to the peer that reads it for the swarm."""

    content_length: int
    piece_size: int


class Readers:
    """Chooses, replaces and distrusts the peers that read the origin for the swarm, and offers their pieces."""

    def __init__(self, config: SupernodeConfig, scheduler: Scheduler, streams: Outboxes, seed_peers: SeedPeers) -> None:
        self.config = config
        self.scheduler = scheduler
        self.streams = streams
        self.seed_peers = seed_peers
        # Tasks whose content a peer reads from the origin for the swarm right now: their other peers hear TaskInfo
        # now and then (news that the swarm is at work while they wait for the next piece).
        self.reading: set[str] = set()

    def seeded(self, task: Task) -> bool:
        """True when seed peers read the task: some take orders, and origin_fetch lets them ("peer" keeps them to
        content without a digest)."""
        return self.seed_peers.up and (self.config.origin_fetch != "peer" or not task.digest)

    def swarm_reads(self, task: Task) -> bool:
        """True when one peer reads the task's content from the origin for the whole swarm: a seed peer (seeded, or
        ordered before), or for content with a digest (each consumer checks it whole) any peer. False for content
        without a digest when no seed peer is up: each of its peers reads the origin for itself."""
        return self.seeded(task) or task.task_id in self.seed_peers.orderings or bool(task.digest)

    @staticmethod
    def may_read(task: Task, host: Host, reads: bool = True) -> bool:
        """True when a peer of host may read the task for the swarm: a seed peer always (its piece digests are
        trusted), any other peer only content with a digest, which every consumer checks whole; never one whose
        download may not read the origin (reads False: RegisterTaskRequest.no_back_source)."""
        return reads and (host.seed_peer or bool(task.digest))

    def order_seed(self, task: Task, request: ContentRequest) -> bool:
        """A seed peer is to read the task: ordered before and not yet overdue, or ordered now. False when no seed
        peer can (none up, or every one tried or distrusted)."""
        if not self.seeded(task):
            return False
        if self.seed_peers.pending(task.task_id):
            return True
        return self.seed_peers.order(task.task_id, request, task.bad_hosts) is not None

    def wanted(self, task: Task) -> bool:
        """True when nobody reads (or read) the origin for the task and the swarm lacks some piece."""
        return self.source(task) is None and not task.range_readers and not _swarm_holds_all(task)

    def source(self, task: Task) -> Peer | None:
        """The peer that reads (or read) the task's content from the origin for the swarm, while it is usable."""
        peer = task.peers.get(task.source_peer_id) if task.source_peer_id else None
        if peer is None or peer.state not in (PeerState.BACK_TO_SOURCE, PeerState.SUCCEEDED):
            return None
        if peer.state is PeerState.SUCCEEDED and not (task.length_known and len(task.pieces) >= task.piece_count):
            return None  # done, but not every piece was offered (its stream broke): others read the rest
        return peer

    def reads_ranges(self, task: Task, peer: Peer) -> tuple[tuple[int, int], ...]:
        """The parts of the origin the peer reads for the swarm while it fetches the rest (none: not such a reader)."""
        return task.range_readers.get(peer.peer_id, ())

    def own_pieces(self, task: Task, peer: Peer) -> int:
        """The pieces a range reader's digests count for (a bitmask): its ranges, and the parts taken from it that
        are not handed on yet (it may have read into them before it heard: read_split)."""
        mask = ranges_mask(task.range_readers.get(peer.peer_id, ()))
        for handoff in task.handoffs:
            if handoff.owner_id == peer.peer_id:
                mask |= handoff.mask
        return mask

    def make(self, task: Task, peer: Peer) -> None:
        """The peer reads the origin for the swarm from now on (it is told so on its stream)."""
        task.source_peer_id = peer.peer_id
        peer.restart_read(self.scheduler.clock())
        self.reading.add(task.task_id)
        if peer.peer_id in self.streams:
            if peer.state is not PeerState.BACK_TO_SOURCE:
                self.streams.deliver(self.scheduler.set_state(peer, PeerState.BACK_TO_SOURCE))
            self.streams.send(peer.peer_id, self.read_for_swarm(task))
            log.info("reader task=%s peer=%s: reads the origin for the swarm", task.task_id[:12], peer.peer_id[:12])

    def read_for_swarm(self, task: Task, ranges: tuple[tuple[int, int], ...] = ()) -> GoToSource:
        """What a reader is told on its stream (ranges: the parts it reads; none: all it lacks), with the base piece
        size: the task's piece size once a reader answered (a reader that takes over cuts the content alike), else
        --piece-size, else the one for the fleet this supernode knows."""
        why, config = "this peer reads the origin for the swarm", self.config
        if task.length_known and task.piece_size:
            base = task.piece_size  # piece_size_for(length, its own result) is that result
        else:
            base = config.piece_size or base_for_fleet(len(self.scheduler.registry.hosts) - len(self.seed_peers.seeds))
        return GoToSource(why, True, config.piece_digest, ranges, base)

    def read_ranges(self, task: Task, peer: Peer, ranges: tuple[tuple[int, int], ...]) -> None:
        """The peer reads ranges of the origin for the swarm and fetches the other pieces from the swarm."""
        if task.source_peer_id == peer.peer_id:
            task.source_peer_id = ""
        if not read_split.left_to_read(task, peer):  # a new reader, or one done with its part: timed anew
            peer.restart_read(self.scheduler.clock())
        task.range_readers[peer.peer_id] = ranges
        peer.read_mask = ranges_mask(ranges)
        self.reading.add(task.task_id)
        self.streams.send(peer.peer_id, self.read_for_swarm(task, ranges))  # before any assignment of the other pieces
        if peer.state is PeerState.BACK_TO_SOURCE:  # it read all of it: now it fetches the rest too
            self.streams.deliver(self.scheduler.set_state(peer, PeerState.RUNNING))
            self.streams.deliver(self.scheduler.connect(peer, peer.window))
        log.info("reader task=%s peer=%s: reads pieces %s", task.task_id[:12], peer.peer_id[:12], _shown(ranges))

    def split(self, task: Task, newcomer: Peer | None = None) -> None:
        """A reader with much left hands half of it to a peer that reads nothing now (supernode.read_split)."""
        read_split.split(self, task, newcomer)

    def applied(self, task: Task, peer: Peer, mask: int) -> None:
        """The reader keeps to the pieces in mask now: the parts taken from it go on (supernode.read_split)."""
        read_split.applied(self, task, peer, mask)

    def tick(self) -> None:
        """Every timer tick: parts taken from readers that did not say they keep to the rest go on, and a split is
        looked at even without an offer to prompt one: a reader that went silent is as slow as its silence says
        (supernode.read_split)."""
        for tid in list(self.reading):
            if (task := self.scheduler.tasks.get(tid)) is None:
                continue
            if task.handoffs:
                read_split.overdue(self, task)
            read_split.split(self, task)

    def replace(self, tid: str) -> None:
        """A reader of the task is gone or failed: a seed peer (connected, else ordered now) or else the connected
        peer that lacks the fewest pieces reads what nobody holds and no other reader reads (all it lacks while the
        length is unknown); the next peer to register reads, when none is connected."""
        task = self.scheduler.tasks.get(tid)
        if task is None or not self.swarm_reads(task) or self.source(task) is not None:
            return  # nobody reads it for the swarm, or somebody reads (or read) all of it
        if task.length_known and not self.unread(task, ""):
            return  # every piece is held, or some reader reads it
        candidates = [
            peer
            for peer in task.peers.values()
            if peer.state is PeerState.RUNNING
            and peer.peer_id in self.streams
            and peer.host.address not in task.bad_hosts
            and not peer.host.unreachable
            and self.may_read(task, peer.host, peer.reads)
        ]
        if self.seeded(task) or tid in self.seed_peers.orderings:
            seeds = [peer for peer in candidates if peer.host.seed_peer]
            if seeds:
                candidates = seeds  # seed peers read first
            elif self.seed_peers.pending(tid) or self.seed_peers.order(tid, None, task.bad_hosts) is not None:
                return  # the seed peer ordered takes it over once its stream opens
            elif not task.digest:
                self._no_seed_left(task)
                return
        if not candidates:
            return
        # A peer that reads nothing yet, else the reader with the least to read; the one holding most among those.
        chosen = min(candidates, key=lambda p: (len(task.range_readers.get(p.peer_id, ())) > 0, -p.held_count))
        if not task.length_known:
            if self.wanted(task) and chosen.peer_id not in task.range_readers:
                self.make(task, chosen)
            return
        mine = ranges_mask(task.range_readers.get(chosen.peer_id, ()))
        if unread := self.unread(task, chosen.peer_id):
            self.read_ranges(task, chosen, mask_ranges(unread | mine))

    @staticmethod
    def unread(task: Task, reader_id: str) -> int:
        """The pieces of a task of known length that nobody holds and no reader but reader_id reads (a bitmask)."""
        unread = ranges_mask(((0, task.piece_count - 1),)) if task.piece_count else 0
        for number in range(task.piece_count):
            if number in task.pieces and task.counts[number] > 0:
                unread &= ~(1 << number)
        for peer_id, ranges in task.range_readers.items():
            if peer_id != reader_id:
                unread &= ~ranges_mask(ranges)
        for handoff in task.handoffs:  # read by its newcomer soon
            unread &= ~handoff.mask
        return unread & ~ranges_mask(task.range_readers.get(reader_id, ()))

    def _no_seed_left(self, task: Task) -> None:
        """Content without a digest whose seed peers are all gone or failed: its peers read the origin themselves
        (the next registration starts over, with a seed peer if one is up by then)."""
        self.seed_peers.forget(task.task_id)
        self.reading.discard(task.task_id)
        log.warning("task=%s: no seed peer is left to read it; its peers read the origin", task.task_id[:12])
        for peer in list(task.peers.values()):
            if peer.state is PeerState.RUNNING and peer.peer_id in self.streams:
                self.streams.to_source(task, peer, "no seed peer is left to read it for the swarm")

    def forget(self, peer: Peer) -> bool:
        """A peer goes away: True if it was one of its task's readers (another is chosen once it is gone)."""
        task = self.scheduler.tasks.get(peer.task_id)
        if task is None:
            return False
        if task.range_readers.pop(peer.peer_id, None) is not None:
            peer.read_mask = 0
            task.handoffs = [h for h in task.handoffs if h.owner_id != peer.peer_id]  # unread now: replace()
            return True
        if task.source_peer_id != peer.peer_id:
            return False
        task.source_peer_id = ""
        return True

    def take_authored(
        self, task: Task, reader: Peer, reports: list[PieceReport], origin: OriginAnswer | None, within: int = -1
    ) -> list[PieceReport]:
        """The reader's news: the origin's answer (length and piece size), and pieces it stored, each offered to the
        swarm at once with the digest the reader computed; only pieces within (a bitmask; -1 all) are its own.
        Returns the other reports (pieces it fetched from the swarm)."""
        if origin is not None:
            self._origin_answered(task, origin)
        offered = []
        others = []
        counted = 0
        for report in reports:
            if not (report.success and not report.parent_id and report.digest and within >> report.number & 1):
                others.append(report)
                continue
            if piecedigest.parse(report.digest) is None:
                raise InvalidArgument(f"piece {report.number} has an unusable digest {report.digest[:80]!r}")
            if not task.length_known or task.piece_size == 0:
                # A reader that held pieces before it was made one (it moved here from another supernode): it
                # offers them again with the content's shape (peer.download.session), until then they are held.
                others.append(report)
                continue
            if report.number >= task.piece_count:
                raise InvalidArgument(f"piece {report.number} out of range: task has {task.piece_count} pieces")
            offered.extend(self.scheduler.piece_authored(task, reader, task.piece_meta(report.number, report.digest)))
            counted += 1
        reader.count_read(counted, task.piece_size, self.scheduler.clock())
        self.streams.deliver(offered)
        if offered or reader.read_pieces:
            self.split(task)
        return others

    def _origin_answered(self, task: Task, origin: OriginAnswer) -> None:
        length, piece_size = origin.content_length, origin.piece_size
        if not MIN_AUTHOR_PIECE_SIZE <= piece_size <= MAX_PIECE_SIZE or length < -1:
            raise InvalidArgument(f"origin answer out of range: length {length}, piece size {piece_size}")
        if length >= 0 and piece_count(length, piece_size) > MAX_PIECE_NUMBER:
            raise InvalidArgument(f"content of {length} bytes in pieces of {piece_size} has too many pieces")
        if task.length_known and (length, piece_size) != (task.content_length, task.piece_size):
            if task.pieces:
                raise InvalidArgument(
                    f"origin answer {length}/{piece_size} differs from the task's {task.content_length}/"
                    f"{task.piece_size}"
                )
        elif task.length_known or length < 0:
            return
        move_task(task, TaskState.RUNNING)
        task.content_length, task.piece_size = length, piece_size
        task.piece_count = piece_count(length, piece_size)
        log.info("reader answered task=%s length=%d piece_size=%d", task.task_id[:12], length, piece_size)
        self.streams.broadcast(task)

    def result(self, task: Task, peer: Peer, success: bool, digest_mismatch: bool) -> None:
        """A peer of the task reported its result (after its state changed): a reader that failed hands the read
        on; a consumer whose content did not match the digest, although its pieces matched, gets the authors
        distrusted (unless it was an author itself: then its digests go, as the origin sent other bytes)."""
        if task.source_peer_id == peer.peer_id or peer.peer_id in task.range_readers:
            if not success:
                self.forget(peer)
            else:
                task.range_readers.pop(peer.peer_id, None)
                read_split.applied(self, task, peer, 0)  # it holds every piece: nothing taken from it is left
        if digest_mismatch and not success and peer.peer_id in task.authors:
            self.scheduler.forget_pieces(task)
            log.warning(
                "reader's content did not match the digest task=%s: its piece digests are dropped", task.task_id[:12]
            )
        elif digest_mismatch and not success and task.peer_authored:
            self._distrust_authors(task)
        if not success:
            self.replace(task.task_id)

    def _distrust_authors(self, task: Task) -> None:
        """A consumer's content did not match the task's digest although every piece matched the digests the
        task's authors gave: those authors (and their hosts) are no longer trusted, no piece is offered until a new
        reader gives digests again, and the task's peers fetch what they lack from the origin themselves."""
        authors = [task.peers[a] for a in task.authors if a in task.peers]
        for author in authors:
            task.bad_hosts.add(author.host.address)
        log.warning(
            "content digest mismatch task=%s: distrusting the peers that read the origin %s",
            task.task_id[:12],
            ", ".join(a.peer_id[:12] for a in authors) or "(gone)",
        )
        for author in authors:
            self.scheduler.distrust(task, author)
        self.scheduler.forget_pieces(task)
        self.reading.discard(task.task_id)
        task.source_peer_id = ""
        for peer_id in list(task.range_readers):
            if (reader := task.peers.get(peer_id)) is not None:
                reader.read_mask = 0
        task.range_readers.clear()
        task.handoffs.clear()
        move_task(task, TaskState.FAILED)
        task.error = "its content did not match the digest; the peer that read the origin is no longer trusted"
        self.streams.broadcast(task)
        for peer in list(task.peers.values()):
            if peer.state is PeerState.RUNNING:
                self.streams.to_source(task, peer, task.error)

    def tell_waiters(self) -> None:
        """Peers of a task whose origin a peer reads for the swarm hear the task again now and then: to them that
        is news that the swarm is still at work while they wait for the next piece."""
        for tid in list(self.reading):
            task = self.scheduler.tasks.get(tid)
            whole = task.peers.get(task.source_peer_id) if task is not None and task.source_peer_id else None
            if task is None or not (task.range_readers or (whole is not None and task.reads_all(whole))):
                self.reading.discard(tid)
            else:
                self.streams.broadcast(task)


def _swarm_holds_all(task: Task) -> bool:
    """True when every piece has a digest and a trusted holder (whose host heart-beats)."""
    count = task.piece_count
    if not task.length_known or len(task.pieces) < count or len(task.counts) < count:
        return False
    return all(task.counts[number] > 0 for number in range(count))


def _shown(ranges: tuple[tuple[int, int], ...]) -> str:
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in ranges)
