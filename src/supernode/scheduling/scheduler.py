"""Piece assignment policy: rarest first, then lowest piece number, within each peer's window, from the best parent.

Lowest number first among equally rare pieces lets in-order readers (dfget, the registry mirror) start early.
Peers that start together still fetch different pieces: a seed peer serves each piece to SEED_FANOUT children
at a time, so the others take the next pieces and later fetch the first ones from each other.

The state lives in the Registry (hosts, tasks, peers and their indexes) and the AssignmentBook (who fetches what
from whom); failures in Health. Every method runs on the event loop that owns the state; none does I/O. Each event
returns the assignments it produced, which the caller delivers to the peers' streams.
Costs per event are O(log n) or O(pieces) big-integer operations, never O(peers).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable

from supernode.resource.host import Host
from supernode.resource.peer import MAX_WINDOW, Peer, PeerState
from supernode.resource.piece import Failure, PieceMeta, PieceReport
from supernode.resource.registry import Registry
from supernode.resource.states import move_peer
from supernode.resource.task import Task
from supernode.scheduling import evaluator, parents
from supernode.scheduling.assignments import Assignment, AssignmentBook
from supernode.scheduling.evaluator import ParentPolicy
from supernode.scheduling.health import HOPELESS_FAILURES, Health

__all__ = ["HOPELESS_FAILURES", "Assignment", "Scheduler"]

# Starved peers re-tried per event that may have helped them (a freed slot, a new holder; one wake for all the
# reports of a message); and how many more a wake looks at, for those that lack only pieces no free parent holds
# (they go to the back). A starved peer is looked at again within moments in a busy swarm, and a wake that found
# the oldest ones wanting what nobody can send yet seldom finds better further on: 10,000 peers on one task had
# 2,600 starved, and wakes that looked at up to 4 per budget + 8 passed over 25 each to fill 0.5.
WAKE_LIMIT = 64
WAKE_SKIPS = 8
# Candidate pieces skipped (no eligible parent) before a fill gives up for now.
MISS_LIMIT = 16
# Children that may fetch one piece from a seed peer at the same time. A seed peer is the parent of last
# resort: when several children want a piece only the seed peer holds, one fetches it from there and
# the others take other pieces meanwhile, then fetch it from that child, so the seed's uplink carries
# each piece about once instead of once per child (measured: 4 hosts on shaped links all fed by the
# seed before this).
SEED_FANOUT = 1
# Pieces a BAD_DIGEST parent held are dropped; failures that are not the parent's fault cost nothing.
_PARENT_FAULTS = frozenset(
    {Failure.TIMEOUT, Failure.BAD_DIGEST, Failure.PARENT_UNAVAILABLE, Failure.PARENT_MISSING_PIECE}
)


class Scheduler:
    """Decides who fetches what from whom, over the registry of hosts, tasks and peers it owns."""

    def __init__(
        self,
        assignment_timeout: float = 30.0,
        clock: Callable[[], float] | None = None,
        policy: ParentPolicy | None = None,
    ) -> None:
        self.assignment_timeout = assignment_timeout
        self.policy = policy or evaluator.DEFAULT  # how parents are ranked (supernode --parent-policy)
        self.clock = clock or time.monotonic
        self.registry = Registry(self.clock)
        self.book = AssignmentBook(self.registry, assignment_timeout, self.clock, SEED_FANOUT)
        self.book.keep_in_zone = self.policy.keep_in_zone
        self.health = Health(self.clock)
        self.seed_fanout = SEED_FANOUT
        # The registry's tables, under the names callers know (the same dicts, never replaced).
        self.hosts = self.registry.hosts
        self.tasks = self.registry.tasks
        self.peers = self.registry.peers
        self.idle = self.registry.idle
        self._hungry: dict[str, Task] = {}  # tasks that had starved peers (pruned lazily)

    @property
    def _deadlines(self) -> list[tuple[float, str, int, str]]:
        """The assignment deadline heap, stale entries included."""
        return self.book.deadlines

    # Registration -------------------------------------------------------------------

    def add_host(self, host: Host) -> None:
        """Register a host."""
        self.registry.add_host(host)

    def add_task(self, task: Task) -> None:
        """Register a task."""
        self.registry.add_task(task)

    def add_peer(self, task: Task, peer: Peer) -> None:
        """Register a peer of a task (it gets assignments once connected)."""
        self.registry.add_peer(task, peer)

    def host_alive(self, host: Host) -> list[Assignment]:
        """The host heart-beat: if children could not reach it, offer it as a parent again."""
        if not host.unreachable:
            return []
        host.unreachable = False
        out: list[Assignment] = []
        for task in self.registry.refresh_host(host):
            out.extend(self._wake(task, min(WAKE_LIMIT, host.free_slots)))
        return out

    def connect(self, peer: Peer, window: int) -> list[Assignment]:
        """The peer opened its stream."""
        peer.connected = True
        peer.last_piece_at = self.clock()
        return self.set_window(peer, window)

    def disconnect(self, peer: Peer) -> list[Assignment]:
        """The peer's stream ended: its outstanding assignments go back to the pool."""
        peer.connected = False
        task = self.tasks[peer.task_id]
        task.starved.pop(peer.peer_id, None)
        freed = self.book.release_all(peer)
        return self._wake(task, freed) + self._wake_unblocked()

    def set_window(self, peer: Peer, window: int) -> list[Assignment]:
        """Change how many unreported pieces the peer wants (0 keeps the previous value)."""
        if window:
            peer.window = min(window, MAX_WINDOW)
        return self.fill(peer)

    # Events -------------------------------------------------------------------------

    def piece_authored(self, task: Task, author: Peer, piece: PieceMeta) -> list[Assignment]:
        """The peer reading the origin for the swarm stored a piece and gave its digest: offer it from there (a
        digest known already stays: every consumer checks the whole content anyway)."""
        task.pieces.setdefault(piece.number, piece)
        task.authors.add(author.peer_id)
        author.last_piece_at = self.clock()
        return self._wake(task, self._hold(task, author, piece.number))

    def report(self, peer: Peer, reports: Iterable[PieceReport]) -> list[Assignment]:
        """Apply a batch of piece results from a peer, wake the starved peers they may help, then top up the
        reporter's window. One wake for the batch (each wake also looks at up to WAKE_SKIPS peers it passes over):
        as many peers as the reporter's host has free slots if it holds a new piece, and one per slot freed."""
        task = self.tasks[peer.task_id]
        out: list[Assignment] = []
        holder = freed = 0
        for report in reports:
            held, slots = self._apply(task, peer, report, out)
            holder, freed = max(holder, held), freed + slots
        out.extend(self._wake(task, min(WAKE_LIMIT, holder + freed)))
        out.extend(self.fill(peer))
        out.extend(self._wake_unblocked())
        return out

    def expire(self, now: float | None = None) -> list[Assignment]:
        """Treat assignments past their deadline as TIMEOUT failures."""
        now = self.clock() if now is None else now
        touched: dict[str, Peer] = {}
        out: list[Assignment] = []
        for child, number, parent_id in self.book.due(now):
            task = self.tasks[child.task_id]
            _, freed = self._apply(task, child, PieceReport(number, parent_id, False, Failure.TIMEOUT), out)
            out.extend(self._wake(task, freed))
            touched[child.peer_id] = child
        for child in touched.values():
            out.extend(self.fill(child))
        out.extend(self._wake_unblocked())
        return out

    def set_state(self, peer: Peer, state: PeerState) -> list[Assignment]:
        """Change a peer's state (states.PEER_MOVES); a peer that stops downloading gives back its assignments."""
        move_peer(peer, state)
        if state is PeerState.RUNNING:
            return self.fill(peer)
        self.health.forget(peer.peer_id)
        task = self.tasks[peer.task_id]
        task.starved.pop(peer.peer_id, None)
        freed = self.book.release_all(peer)
        return self._wake(task, freed) + self._wake_unblocked()

    def remove_peer(self, peer: Peer) -> list[Assignment]:
        """The peer left: it is no longer a parent, and its assignments go elsewhere."""
        task = self.tasks.get(peer.task_id)
        if task is None or task.peers.get(peer.peer_id) is not peer:
            return []
        move_peer(peer, PeerState.LEFT)
        self.registry.update_free(task, peer)
        self.book.release_all(peer)
        orphans = self.book.drop_uploads(peer)
        self.registry.detach_peer(task, peer)
        self.health.forget(peer.peer_id)
        out: list[Assignment] = []
        for child in orphans:
            out.extend(self.fill(child))
        out.extend(self._wake(task, WAKE_LIMIT))
        out.extend(self._wake_unblocked())
        return out

    def remove_host(self, host: Host) -> list[Assignment]:
        """The host left or stopped heart-beating: drop it with all its peers."""
        out: list[Assignment] = []
        for peer_id in list(host.peer_ids):
            peer = self.peers.get(peer_id)
            if peer is not None:
                out.extend(self.remove_peer(peer))
        self.registry.remove_host(host)
        return [a for a in out if a.child_id in self.peers]

    def remove_task(self, task: Task) -> list[Assignment]:
        """Forget a task and all its peers."""
        out: list[Assignment] = []
        for peer in list(task.peers.values()):
            out.extend(self.remove_peer(peer))
        self.registry.drop_task(task)
        self._hungry.pop(task.task_id, None)
        return [a for a in out if a.child_id in self.peers]

    def forget_pieces(self, task: Task) -> None:
        """The task's piece digests are not to be trusted (its content did not match its digest): no piece is offered
        from anywhere until a new author gives digests again."""
        for peer in list(task.peers.values()):
            self._forget_held(task, peer)
        task.pieces.clear()
        task.authors.clear()

    def _forget_held(self, task: Task, peer: Peer) -> None:
        """The peer is no longer a holder of any piece (its uploads are cancelled)."""
        self.book.drop_uploads(peer)
        self.registry.unhold_all(task, peer)

    # Assignment ---------------------------------------------------------------------

    def fill(self, peer: Peer) -> list[Assignment]:
        """Assign pieces to the peer until its window is full or nothing is assignable."""
        if not peer.connected or peer.state is not PeerState.RUNNING:
            return []
        task = self.tasks[peer.task_id]
        free = peer.window - len(peer.outstanding)
        if free <= 0 or task.is_complete(peer):
            task.starved.pop(peer.peer_id, None)
            return []
        exclude = peer.held | peer.pending | peer.read_mask
        servable = self.registry.servable(task) & ~exclude
        copy_waits = parents.copy_waits(task, peer, self.clock())
        if copy_waits:
            servable &= task.buckets.get(1, 0)  # while it waits: only pieces one peer alone holds
        if not servable:
            self._starve(task, peer.peer_id)
            return []
        out: list[Assignment] = []
        misses = 0
        fanout, policy = self.seed_fanout, self.policy
        for count in task.sorted_counts:
            part = task.buckets[count] & servable
            while part and free > 0 and misses < MISS_LIMIT:
                low = part & -part
                part ^= low
                number = low.bit_length() - 1
                piece = task.pieces.get(number)
                if piece is None:
                    continue  # held by peers, but no digest to give for it (yet)
                parent = parents.choose(task, peer, number, fanout, copy_waits, policy)
                if parent is None or (parent.host.seed_peer and task.seed_inflight.get(number, 0) >= fanout):
                    misses += 1
                    continue
                out.append(self.book.assign(peer, parent, piece))
                free -= 1
            if free <= 0 or misses >= MISS_LIMIT:
                break
        if free > 0:
            self._starve(task, peer.peer_id)
        else:
            task.starved.pop(peer.peer_id, None)
        return out

    def _hold(self, task: Task, peer: Peer, number: int) -> int:
        """The peer holds a piece now; starved peers may fetch it from there: how many to wake (0 when it held it)."""
        if not self.registry.hold(task, peer, number):
            return 0
        return min(WAKE_LIMIT, peer.host.free_slots)

    def _apply(self, task: Task, peer: Peer, report: PieceReport, out: list[Assignment]) -> tuple[int, int]:
        """Apply one piece result (assignments it makes at once go to out). Returns the starved peers it may help,
        for the caller to wake: (the new holder's free slots, or 0 when it holds nothing new; parent slots freed)."""
        current = peer.outstanding.get(report.number)
        held = 0
        freed = 0
        if current is not None and (report.success or current.parent_id == report.parent_id):
            delivered = report.success and current.parent_id == report.parent_id
            freed = 1 if self.book.release(peer, report.number, delivered, report.sending_s) is not None else 0
        parent = task.peers.get(report.parent_id) if report.parent_id else None
        if report.success:
            self.health.served(peer.peer_id)
            peer.last_piece_at = self.clock()
            if parent is not None:
                parent.uploads_ok += 1
            held = self._hold(task, peer, report.number)
        elif report.failure in _PARENT_FAULTS or report.failure is Failure.PARENT_BUSY:
            self.health.failed(peer.peer_id, report.number)
        if not report.success and parent is not None and report.failure in _PARENT_FAULTS:
            parent.uploads_failed += 1
            if report.failure is Failure.BAD_DIGEST:
                out.extend(self.distrust(task, parent))
            elif report.failure is Failure.PARENT_UNAVAILABLE and not parent.host.unreachable:
                self.health.unreachable(parent.host)
                self.registry.refresh_host(parent.host)
            elif report.failure is Failure.PARENT_MISSING_PIECE:
                self.registry.unhold(task, parent, report.number)
        return held, freed

    def hopeless(self, peer: Peer) -> bool:
        """True when the peer failed to fetch a piece HOPELESS_FAILURES times since its last piece: the swarm cannot
        serve it (its parents are wedged or unreachable from there), and it is better sent back to source."""
        return self.health.hopeless(peer.peer_id)

    def distrust(self, task: Task, parent: Peer) -> list[Assignment]:
        """A parent served bad bytes: never choose it again for this task, forget its pieces."""
        if not self.registry.untrust(task, parent):
            return []
        out: list[Assignment] = []
        for child in self.book.drop_uploads(parent):
            out.extend(self.fill(child))
        return out

    # Starved peers ------------------------------------------------------------------

    def _starve(self, task: Task, peer_id: str) -> None:
        task.starved[peer_id] = None
        self._hungry[task.task_id] = task

    def _wake_unblocked(self) -> list[Assignment]:
        """Wake the starved peers of the tasks a newly unblocked host serves.

        Only tasks with starved peers are looked at: a supernode may hold thousands of finished tasks.
        """
        out: list[Assignment] = []
        unblocked = self.book.unblocked
        while unblocked:
            _, host = unblocked.popitem()
            for task_id, task in list(self._hungry.items()):
                if not task.starved or self.tasks.get(task_id) is not task:
                    del self._hungry[task_id]
                elif host.free_slots <= 0:
                    break
                elif self.registry.serves(host, task):
                    out.extend(self._wake(task, min(WAKE_LIMIT, host.free_slots)))
        return out

    def _wake(self, task: Task, budget: int) -> list[Assignment]:
        """Give up to budget starved peers of the task something to fetch, oldest first.

        Peers that lack nothing a free parent holds are moved to the back without a fill.
        """
        out: list[Assignment] = []
        starved, peers = task.starved, task.peers
        if budget <= 0 or not starved:
            return out
        servable = self.registry.servable(task)
        # A hot task passes over many starved peers here: each skip is kept to a pop and a store.
        for peer_id in list(itertools.islice(starved, budget + WAKE_SKIPS)):
            starved.pop(peer_id, None)
            peer = peers.get(peer_id)
            if peer is None:
                continue
            if not servable & ~(peer.held | peer.pending):
                starved[peer_id] = None  # to the back (the task is among the hungry already)
                continue
            got = self.fill(peer)
            if got:
                out.extend(got)
                servable = self.registry.servable(task)
                budget -= 1
                if budget <= 0 or not servable:
                    break
        return out
