"""Piece assignment: rarest first, then lowest piece number, within each peer's window, from the best parent.

Lowest number first among equally rare pieces lets in-order readers (dfget, the registry mirror) start early.
Peers that start together still fetch different pieces: the seed serves each piece to SEED_FANOUT children
at a time, so the others take the next pieces and later fetch the first ones from each other.

Every method runs on the event loop that owns the state; none does I/O. Each event
returns the assignments it produced, which the caller delivers to the peers' streams.
Costs per event are O(log n) or O(pieces) big-integer operations, never O(peers).
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from dfcommon.backoff import BackoffPolicy
from supernode.resource.host import Host
from supernode.resource.peer import MAX_WINDOW, Outstanding, Peer, PeerState
from supernode.resource.piece import Failure, PieceMeta, PieceReport
from supernode.resource.task import Task
from supernode.scheduling import evaluator

# Holders looked at when choosing a parent for one piece (bounds the cost in big swarms).
PARENT_SAMPLE = 8
# Starved peers re-tried per event that may have helped them (a freed slot, a new holder).
WAKE_LIMIT = 64
# Candidate pieces skipped (no eligible parent) before a fill gives up for now.
MISS_LIMIT = 16
# Children that may fetch one piece from the seed at the same time. The seed is the parent of last
# resort: when several children want a piece only the seed holds, one fetches it from the seed and
# the others take other pieces meanwhile, then fetch it from that child, so the seed's uplink carries
# each piece about once instead of once per child (measured: 4 hosts on shaped links all fed by the
# seed before this).
SEED_FANOUT = 1
# A seed its children cannot reach (advertised on an address nobody reaches, or down) is skipped like any parent,
# but it never heart-beats: it is offered again after a cool-down of 2 s, doubling with each failure in a row up to
# 60 s, so its children go back to source instead of asking it thousands of times a minute.
SEED_COOLDOWN = BackoffPolicy(base=2.0, cap=60.0, jitter=0.0)
# A child that failed to fetch one piece this many times (from any parent, busy ones included) with no piece
# arriving meanwhile is sent back to source instead of being given the same failing parents again (hopeless()).
# Per piece: a parent that dies with a whole window outstanding fails each of those pieces only once.
HOPELESS_FAILURES = 8
# Pieces a BAD_DIGEST parent held are dropped; failures that are not the parent's fault cost nothing.
_PARENT_FAULTS = frozenset(
    {Failure.TIMEOUT, Failure.BAD_DIGEST, Failure.PARENT_UNAVAILABLE, Failure.PARENT_MISSING_PIECE}
)


@dataclass(frozen=True)
class Assignment:
    """A piece for a child peer to fetch from a parent peer."""

    child_id: str
    piece: PieceMeta
    parent: Peer


class Scheduler:
    """Owns the swarm's hosts, tasks and peers and decides who fetches what from whom."""

    def __init__(
        self,
        assignment_timeout: float = 30.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.assignment_timeout = assignment_timeout
        self.clock = clock or time.monotonic
        self.hosts: dict[str, Host] = {}
        self.tasks: dict[str, Task] = {}
        self.peers: dict[str, Peer] = {}
        self._deadlines: list[tuple[float, str, int, str]] = []
        self._live = 0  # outstanding assignments; the heap also holds stale entries
        # Hosts whose upload slots went from all busy to some free since the last event: their other tasks'
        # starved peers are woken too, not only the task whose report freed the slot.
        self._unblocked: dict[str, Host] = {}
        self._hungry: dict[str, Task] = {}  # tasks that had starved peers (pruned lazily)
        self._cooling: dict[str, tuple[float, Host]] = {}  # unreachable seed hosts: when they are offered again
        self._seed_failures: dict[str, int] = {}  # seed host id -> times in a row it was unreachable
        # child peer id -> piece number -> failed fetches since the child's last piece (not its own fault)
        self._failing: dict[str, dict[int, int]] = {}
        # Tasks with no peer but the seed -> since when, oldest first (a task that gets idle again moves to the end).
        self.idle: dict[str, float] = {}

    # Registration -------------------------------------------------------------------

    def add_host(self, host: Host) -> None:
        """Register a host."""
        self.hosts[host.host_id] = host

    def add_task(self, task: Task, seed: Peer) -> None:
        """Register a task with its seed peer."""
        self.tasks[task.task_id] = task
        self._attach(task, seed)
        self.idle[task.task_id] = self.clock()

    def add_peer(self, task: Task, peer: Peer) -> None:
        """Register a peer of a task (it gets assignments once connected)."""
        self._attach(task, peer)
        self.idle.pop(task.task_id, None)

    def _attach(self, task: Task, peer: Peer) -> None:
        task.peers[peer.peer_id] = peer
        self.peers[peer.peer_id] = peer
        peer.host.peer_ids.add(peer.peer_id)
        self._update_free(task, peer)

    def _update_free(self, task: Task, peer: Peer) -> None:
        """Keep task.free_parents (and the pieces free parents can serve) in step with the peer."""
        free = (
            peer.held_count > 0
            and peer.host.free_slots > 0
            and peer.state is not PeerState.LEFT
            and peer.peer_id not in task.bad_parents
            and not peer.host.unreachable
        )
        if free == (peer.peer_id in task.free_parents):
            return
        if free:
            task.free_parents.add(peer.peer_id)
        else:
            task.free_parents.discard(peer.peer_id)
        if peer.is_seed:
            return  # the seed's pieces are added in _servable
        counts = task.free_counts
        delta = 1 if free else -1
        held = peer.held
        while held:
            low = held & -held
            held ^= low
            number = low.bit_length() - 1
            counts[number] += delta
            if counts[number] == 0:
                task.peer_servable &= ~low
            elif free and counts[number] == 1:
                task.peer_servable |= low

    def _upload_changed(self, host: Host, was_free: bool) -> None:
        """After an upload started or ended: wake the host's tasks when it went from busy to free."""
        if (host.free_slots > 0) != was_free:
            self._refresh_host(host)
            if not was_free:
                self._unblocked[host.host_id] = host

    def _starve(self, task: Task, peer_id: str) -> None:
        task.starved[peer_id] = None
        self._hungry[task.task_id] = task

    def _wake_unblocked(self) -> list[Assignment]:
        """Wake the starved peers of the tasks a newly unblocked host serves (the seed's host serves them all).

        Only tasks with starved peers are looked at: a supernode may hold thousands of finished tasks.
        """
        out: list[Assignment] = []
        while self._unblocked:
            _, host = self._unblocked.popitem()
            for task_id, task in list(self._hungry.items()):
                if not task.starved or self.tasks.get(task_id) is not task:
                    del self._hungry[task_id]
                elif host.free_slots <= 0:
                    break
                elif self._serves(host, task):
                    out.extend(self._wake(task, min(WAKE_LIMIT, host.free_slots)))
        return out

    def _serves(self, host: Host, task: Task) -> bool:
        """True when one of the host's peers belongs to the task."""
        if task.seed_peer_id in host.peer_ids:
            return True
        return any((peer := self.peers.get(p)) is not None and peer.task_id == task.task_id for p in host.peer_ids)

    def _refresh_host(self, host: Host) -> list[Task]:
        """Re-evaluate whether each of the host's peers can serve; returns their tasks."""
        tasks = []
        for peer_id in host.peer_ids:
            peer = self.peers.get(peer_id)
            task = self.tasks.get(peer.task_id) if peer is not None else None
            if peer is not None and task is not None:
                self._update_free(task, peer)
                tasks.append(task)
        return tasks

    def host_alive(self, host: Host) -> list[Assignment]:
        """The host heart-beat: if children could not reach it, offer it as a parent again."""
        if not host.unreachable:
            return []
        host.unreachable = False
        out: list[Assignment] = []
        for task in self._refresh_host(host):
            out.extend(self._wake(task, min(WAKE_LIMIT, host.free_slots)))
        return out

    def _servable(self, task: Task) -> int:
        """Pieces that some free, trusted parent holds."""
        if task.seed_peer_id in task.free_parents:
            return task.peer_servable | (task.peers[task.seed_peer_id].held & ~task.seed_saturated)
        return task.peer_servable

    def connect(self, peer: Peer, window: int) -> list[Assignment]:
        """The peer opened its stream."""
        peer.connected = True
        return self.set_window(peer, window)

    def disconnect(self, peer: Peer) -> list[Assignment]:
        """The peer's stream ended: its outstanding assignments go back to the pool."""
        peer.connected = False
        task = self.tasks[peer.task_id]
        task.starved.pop(peer.peer_id, None)
        freed = [self._release(peer, number) for number in list(peer.outstanding)]
        return self._wake(task, sum(1 for parent in freed if parent is not None)) + self._wake_unblocked()

    def set_window(self, peer: Peer, window: int) -> list[Assignment]:
        """Change how many unreported pieces the peer wants (0 keeps the previous value)."""
        if window:
            peer.window = min(window, MAX_WINDOW)
        return self.fill(peer)

    # Events -------------------------------------------------------------------------

    def piece_written(self, task: Task, piece: PieceMeta) -> list[Assignment]:
        """The seed wrote and verified a piece: offer it."""
        task.pieces.setdefault(piece.number, piece)
        seed = task.peers[task.seed_peer_id]
        return self._hold(task, seed, piece.number)

    def piece_authored(self, task: Task, author: Peer, piece: PieceMeta) -> list[Assignment]:
        """The peer reading the origin for the swarm stored a piece and gave its digest: offer it from there (a
        digest known already stays: every consumer checks the whole content anyway)."""
        task.pieces.setdefault(piece.number, piece)
        task.authors.add(author.peer_id)
        return self._hold(task, author, piece.number)

    def report(self, peer: Peer, reports: Iterable[PieceReport]) -> list[Assignment]:
        """Apply a batch of piece results from a peer, then top up its window."""
        task = self.tasks[peer.task_id]
        out: list[Assignment] = []
        for report in reports:
            out.extend(self._apply(task, peer, report))
        out.extend(self.fill(peer))
        out.extend(self._wake_unblocked())
        return out

    def expire(self, now: float | None = None) -> list[Assignment]:
        """Treat assignments past their deadline as TIMEOUT failures."""
        now = self.clock() if now is None else now
        if len(self._deadlines) > 4 * self._live + 1024:
            self._compact()
        touched: dict[str, Peer] = {}
        out: list[Assignment] = []
        for host_id, (until, host) in list(self._cooling.items()):
            if until <= now:
                del self._cooling[host_id]
                out.extend(self.host_alive(host))
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, child_id, number, parent_id = heapq.heappop(self._deadlines)
            child = self.peers.get(child_id)
            if child is None:
                continue
            current = child.outstanding.get(number)
            if current is None or current.parent_id != parent_id or current.deadline != deadline:
                continue
            task = self.tasks[child.task_id]
            out.extend(self._apply(task, child, PieceReport(number, parent_id, False, Failure.TIMEOUT)))
            touched[child_id] = child
        for child in touched.values():
            out.extend(self.fill(child))
        out.extend(self._wake_unblocked())
        return out

    def _compact(self) -> None:
        """Rebuild the deadline heap from the live assignments only."""
        self._deadlines = [
            (o.deadline, peer.peer_id, number, o.parent_id)
            for peer in self.peers.values()
            for number, o in peer.outstanding.items()
        ]
        heapq.heapify(self._deadlines)

    def set_state(self, peer: Peer, state: PeerState) -> list[Assignment]:
        """Change a peer's state; a peer that stops downloading gives back its assignments."""
        peer.state = state
        if state is PeerState.RUNNING:
            return self.fill(peer)
        self._failing.pop(peer.peer_id, None)
        task = self.tasks[peer.task_id]
        task.starved.pop(peer.peer_id, None)
        freed = [self._release(peer, number) for number in list(peer.outstanding)]
        return self._wake(task, sum(1 for parent in freed if parent is not None)) + self._wake_unblocked()

    def remove_peer(self, peer: Peer) -> list[Assignment]:
        """The peer left: it is no longer a parent, and its assignments go elsewhere."""
        task = self.tasks.get(peer.task_id)
        if task is None or task.peers.get(peer.peer_id) is not peer:
            return []
        peer.state = PeerState.LEFT
        self._update_free(task, peer)
        for number in list(peer.outstanding):
            self._release(peer, number)
        orphans = self._drop_uploads(peer)
        held = peer.held
        while held:
            low = held & -held
            task.remove_holder(low.bit_length() - 1, peer.peer_id)
            held ^= low
        del task.peers[peer.peer_id]
        task.starved.pop(peer.peer_id, None)
        self._failing.pop(peer.peer_id, None)
        self.peers.pop(peer.peer_id, None)
        peer.host.peer_ids.discard(peer.peer_id)
        if not peer.is_seed and len(task.peers) == int(task.seed_peer_id in task.peers):
            self.idle.pop(task.task_id, None)
            self.idle[task.task_id] = self.clock()
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
        self.hosts.pop(host.host_id, None)
        return [a for a in out if a.child_id in self.peers]

    def remove_task(self, task: Task) -> list[Assignment]:
        """Forget a task and all its peers."""
        out: list[Assignment] = []
        for peer in list(task.peers.values()):
            out.extend(self.remove_peer(peer))
        self.tasks.pop(task.task_id, None)
        self.idle.pop(task.task_id, None)
        self._hungry.pop(task.task_id, None)
        return [a for a in out if a.child_id in self.peers]

    def idle_for(self, ttl: float, now: float | None = None) -> list[Task]:
        """Tasks that have had no peer but the seed for at least ttl seconds, oldest first."""
        limit = (self.clock() if now is None else now) - ttl
        out = []
        for tid, since in self.idle.items():
            if since > limit:
                break
            out.append(self.tasks[tid])
        return out

    def keep(self, task: Task) -> None:
        """The idle task is still in use (a fetch of the seed runs): its idle time starts again."""
        if self.idle.pop(task.task_id, None) is not None:
            self.idle[task.task_id] = self.clock()

    def reset_seed(self, task: Task) -> None:
        """The seed starts over (a new origin fetch): its pieces are no longer offered."""
        self._forget_held(task, task.peers[task.seed_peer_id])
        task.pieces.clear()

    def forget_pieces(self, task: Task) -> None:
        """The task's piece digests are not to be trusted (its content did not match its digest): no piece is offered
        from anywhere until a new author or the seed gives digests again."""
        for peer in list(task.peers.values()):
            self._forget_held(task, peer)
        task.pieces.clear()
        task.authors.clear()

    def _forget_held(self, task: Task, peer: Peer) -> None:
        """The peer is no longer a holder of any piece (its uploads are cancelled)."""
        self._drop_uploads(peer)
        held = peer.held
        if peer.is_seed:  # the seed's pieces are not in free_counts (see _servable)
            while held:
                low = held & -held
                task.remove_holder(low.bit_length() - 1, peer.peer_id)
                held ^= low
            peer.held = 0
            peer.held_count = 0
        while held:
            low = held & -held
            self._unhold(task, peer, low.bit_length() - 1)
            held ^= low
        self._update_free(task, peer)

    # Assignment ---------------------------------------------------------------------

    def fill(self, peer: Peer) -> list[Assignment]:
        """Assign pieces to the peer until its window is full or nothing is assignable."""
        if not peer.connected or peer.state is not PeerState.RUNNING or peer.is_seed:
            return []
        task = self.tasks[peer.task_id]
        free = peer.window - len(peer.outstanding)
        if free <= 0 or task.is_complete(peer):
            task.starved.pop(peer.peer_id, None)
            return []
        exclude = peer.held | peer.pending
        servable = self._servable(task) & ~exclude
        if not servable:
            self._starve(task, peer.peer_id)
            return []
        out: list[Assignment] = []
        misses = 0
        for count in task.sorted_counts:
            part = task.buckets[count] & servable
            while part and free > 0 and misses < MISS_LIMIT:
                low = part & -part
                part ^= low
                number = low.bit_length() - 1
                piece = task.pieces.get(number)
                if piece is None:
                    continue  # held by peers, but no digest to give for it (yet)
                parent = self._choose_parent(task, peer, number)
                if parent is None or (parent.is_seed and task.seed_inflight.get(number, 0) >= SEED_FANOUT):
                    misses += 1
                    continue
                out.append(self._assign(peer, parent, piece))
                free -= 1
            if free <= 0 or misses >= MISS_LIMIT:
                break
        if free > 0:
            self._starve(task, peer.peer_id)
        else:
            task.starved.pop(peer.peer_id, None)
        return out

    def _choose_parent(self, task: Task, child: Peer, number: int) -> Peer | None:
        """The best free, trusted holder of the piece (evaluator.rank), looking at up to PARENT_SAMPLE of them; the
        seed only while it sends this piece to fewer than SEED_FANOUT children."""
        chosen: Peer | None = None
        chosen_key: tuple[int, float] | None = None
        looked = 0
        location = child.host.location
        holders = task.holders[number]
        free = task.free_parents
        by_free = len(free) < len(holders)
        seed_free = task.seed_inflight.get(number, 0) < SEED_FANOUT
        for parent_id in free if by_free else holders:
            if parent_id == child.peer_id or parent_id not in (holders if by_free else free):
                continue
            parent = task.peers[parent_id]
            host = parent.host
            if host is child.host or (parent.is_seed and not seed_free):
                continue
            candidate = evaluator.Candidate(
                host.free_slots,
                host.capacity,
                parent.uploads_ok,
                parent.uploads_failed,
                host.location,
                parent.is_seed,
                sending_piece=number in parent.serving,
            )
            key = evaluator.rank(candidate, location)
            if chosen_key is None or key > chosen_key:
                chosen, chosen_key = parent, key
            looked += 1
            if looked >= PARENT_SAMPLE and chosen_key[0] == evaluator.IDLE_PEER:
                break
        return chosen

    def _assign(self, child: Peer, parent: Peer, piece: PieceMeta) -> Assignment:
        deadline = self.clock() + self.assignment_timeout
        child.outstanding[piece.number] = Outstanding(parent.peer_id, deadline, piece.size)
        child.pending |= 1 << piece.number
        parent.uploading.add((child.peer_id, piece.number))
        parent.serving[piece.number] = parent.serving.get(piece.number, 0) + 1
        if parent.is_seed:
            task = self.tasks[child.task_id]
            count = task.seed_inflight.get(piece.number, 0) + 1
            task.seed_inflight[piece.number] = count
            if count >= SEED_FANOUT:
                task.seed_saturated |= 1 << piece.number
        was_free = parent.host.free_slots > 0
        parent.host.started(piece.size, self.clock())
        self._upload_changed(parent.host, was_free)
        heapq.heappush(self._deadlines, (deadline, child.peer_id, piece.number, parent.peer_id))
        self._live += 1
        return Assignment(child.peer_id, piece, parent)

    def _release(self, child: Peer, number: int, delivered: bool = False) -> Peer | None:
        """Forget an outstanding assignment (delivered: the parent sent the piece); returns its parent if known."""
        current = child.outstanding.pop(number, None)
        if current is None:
            return None
        self._live -= 1
        child.pending &= ~(1 << number)
        parent = self.peers.get(current.parent_id)
        if parent is not None and (child.peer_id, number) in parent.uploading:
            parent.uploading.discard((child.peer_id, number))
            serving = parent.serving.get(number, 0) - 1
            if serving > 0:
                parent.serving[number] = serving
            else:
                parent.serving.pop(number, None)
            if parent.is_seed:
                self._seed_done(self.tasks.get(child.task_id), number)
            was_free = parent.host.free_slots > 0
            parent.host.ended(current.size, delivered, self.clock())
            self._upload_changed(parent.host, was_free)
        return parent

    @staticmethod
    def _seed_done(task: Task | None, number: int) -> None:
        """One child fewer fetches the piece from the seed."""
        if task is None:
            return
        left = task.seed_inflight.get(number, 0) - 1
        if left > 0:
            task.seed_inflight[number] = left
        else:
            task.seed_inflight.pop(number, None)
        if left < SEED_FANOUT:
            task.seed_saturated &= ~(1 << number)

    def _drop_uploads(self, parent: Peer) -> list[Peer]:
        """Cancel every assignment served by parent; returns the children to refill."""
        children: dict[str, Peer] = {}
        for child_id, number in list(parent.uploading):
            child = self.peers.get(child_id)
            if child is not None:
                self._release(child, number)
                children[child_id] = child
        parent.uploading.clear()
        parent.serving.clear()
        return list(children.values())

    def _hold(self, task: Task, peer: Peer, number: int) -> list[Assignment]:
        """The peer holds a piece now; starved peers may fetch it from there."""
        if peer.holds(number):
            return []
        peer.held |= 1 << number
        peer.held_count += 1
        if peer.peer_id in task.bad_parents:
            return []
        task.add_holder(number, peer.peer_id)
        if peer.peer_id not in task.free_parents:
            self._update_free(task, peer)
        elif not peer.is_seed:
            task.free_counts[number] += 1
            task.peer_servable |= 1 << number
        return self._wake(task, min(WAKE_LIMIT, peer.host.free_slots))

    def _unhold(self, task: Task, peer: Peer, number: int) -> None:
        """The peer does not hold the piece after all (its cache lost it): never assign it from there again."""
        if not peer.holds(number):
            return
        bit = 1 << number
        peer.held &= ~bit
        peer.held_count -= 1
        if peer.peer_id in task.bad_parents:
            return
        task.remove_holder(number, peer.peer_id)
        if peer.peer_id in task.free_parents:
            task.free_counts[number] -= 1
            if task.free_counts[number] == 0:
                task.peer_servable &= ~bit
        if peer.held_count == 0:
            self._update_free(task, peer)

    def _apply(self, task: Task, peer: Peer, report: PieceReport) -> list[Assignment]:
        current = peer.outstanding.get(report.number)
        out: list[Assignment] = []
        freed = 0
        if current is not None and (report.success or current.parent_id == report.parent_id):
            delivered = report.success and current.parent_id == report.parent_id
            freed = 1 if self._release(peer, report.number, delivered) is not None else 0
        parent = task.peers.get(report.parent_id) if report.parent_id else None
        if report.success:
            self._failing.pop(peer.peer_id, None)
            if parent is not None:
                parent.uploads_ok += 1
                if parent.is_seed:
                    self._seed_failures.pop(parent.host.host_id, None)
            out.extend(self._hold(task, peer, report.number))
        elif report.failure in _PARENT_FAULTS or report.failure is Failure.PARENT_BUSY:
            counts = self._failing.setdefault(peer.peer_id, {})
            counts[report.number] = counts.get(report.number, 0) + 1
        if not report.success and parent is not None and report.failure in _PARENT_FAULTS:
            parent.uploads_failed += 1
            if report.failure is Failure.BAD_DIGEST and not parent.is_seed:
                out.extend(self.distrust(task, parent))
            elif report.failure is Failure.PARENT_UNAVAILABLE and not parent.host.unreachable:
                self._mark_unreachable(parent.host)
            elif report.failure is Failure.PARENT_MISSING_PIECE and not parent.is_seed:
                self._unhold(task, parent, report.number)
        if freed:
            out.extend(self._wake(task, freed))
        return out

    def hopeless(self, peer: Peer) -> bool:
        """True when the peer failed to fetch a piece HOPELESS_FAILURES times since its last piece: the swarm cannot
        serve it (its parents are wedged or unreachable from there), and it is better sent back to source."""
        counts = self._failing.get(peer.peer_id)
        return counts is not None and max(counts.values()) >= HOPELESS_FAILURES

    def _mark_unreachable(self, host: Host) -> None:
        """A child could not reach the host: offer none of its peers until it heart-beats (a seed: until its
        cool-down ends, see SEED_COOLDOWN)."""
        host.unreachable = True
        self._refresh_host(host)
        if host.is_seed:
            failures = self._seed_failures.get(host.host_id, 0) + 1
            self._seed_failures[host.host_id] = failures
            self._cooling[host.host_id] = (self.clock() + SEED_COOLDOWN.delay(failures, lambda: 0.0), host)

    def distrust(self, task: Task, parent: Peer) -> list[Assignment]:
        """A parent served bad bytes: never choose it again for this task, forget its pieces."""
        if parent.peer_id in task.bad_parents:
            return []
        task.bad_parents.add(parent.peer_id)
        self._update_free(task, parent)
        held = parent.held
        while held:
            low = held & -held
            task.remove_holder(low.bit_length() - 1, parent.peer_id)
            held ^= low
        out: list[Assignment] = []
        for child in self._drop_uploads(parent):
            out.extend(self.fill(child))
        return out

    def _wake(self, task: Task, budget: int) -> list[Assignment]:
        """Give up to budget starved peers of the task something to fetch, oldest first.

        Peers that lack nothing a free parent holds are moved to the back without a fill.
        """
        out: list[Assignment] = []
        if budget <= 0 or not task.starved:
            return out
        servable = self._servable(task)
        for peer_id in list(itertools.islice(task.starved, 4 * budget + 8)):
            peer = task.peers.get(peer_id)
            task.starved.pop(peer_id, None)
            if peer is None:
                continue
            if not servable & ~(peer.held | peer.pending):
                self._starve(task, peer_id)
                continue
            got = self.fill(peer)
            if got:
                out.extend(got)
                servable = self._servable(task)
                budget -= 1
                if budget <= 0 or not servable:
                    break
        return out
