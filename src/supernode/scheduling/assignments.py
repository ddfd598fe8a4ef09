"""The book of outstanding assignments: which child fetches which piece from which parent, until when.

It keeps the parents' side in step (pieces each one is sending, the seed peers' per-piece fan-out, the host's upload
accounting) and notes hosts whose
upload slots went from all busy to some free, for the scheduler to wake their tasks' starved peers. Deadlines live in a
heap with stale entries, compacted when they outnumber the live ones.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from typing import NamedTuple

from supernode.resource.host import Host
from supernode.resource.peer import Outstanding, Peer
from supernode.resource.piece import PieceMeta
from supernode.resource.registry import Registry
from supernode.resource.task import Task
from supernode.scheduling.evaluator import ZONE_PATHS, zone_of, zone_path


class Assignment(NamedTuple):
    """A piece for a child peer to fetch from a parent peer (a named tuple: one is built per assignment, see
    PieceReport)."""

    child_id: str
    piece: PieceMeta
    parent: Peer


class AssignmentBook:
    """Outstanding assignments and the upload accounting of their parents."""

    def __init__(self, registry: Registry, timeout: float, clock: Callable[[], float], seed_fanout: int) -> None:
        self.registry = registry
        self.seed_fanout = seed_fanout
        self.timeout = timeout
        self.clock = clock
        self.deadlines: list[tuple[float, str, int, str]] = []
        self.live = 0  # outstanding assignments; the heap also holds stale entries
        # Hosts whose upload slots went from all busy to some free since the scheduler last looked: their other
        # tasks' starved peers are woken too, not only the task whose report freed the slot.
        self.unblocked: dict[str, Host] = {}
        self.keep_in_zone = False  # count the pieces fetched into a zone from another (Task.crossing)
        # Piece bytes delivered, by where the parent was (evaluator.zone_path): what --parent-policy nearest saves.
        self.delivered_bytes = dict.fromkeys(ZONE_PATHS, 0)

    def assign(self, child: Peer, parent: Peer, piece: PieceMeta) -> Assignment:
        """Record that child fetches piece from parent from now on."""
        deadline = self.clock() + self.timeout
        child.outstanding[piece.number] = Outstanding(parent.peer_id, deadline, piece.size)
        child.pending |= 1 << piece.number
        parent.uploading.add((child.peer_id, piece.number))
        parent.serving[piece.number] = parent.serving.get(piece.number, 0) + 1
        if parent.host.seed_peer:
            self._seed_started(self.registry.tasks[child.task_id], piece.number)
        if self.keep_in_zone:
            self._crossing(child, parent, piece.number, 1)
        was_free = parent.host.free_slots > 0
        parent.host.started(piece.size)
        self._upload_changed(parent.host, was_free)
        heapq.heappush(self.deadlines, (deadline, child.peer_id, piece.number, parent.peer_id))
        self.live += 1
        return Assignment(child.peer_id, piece, parent)

    def release(self, child: Peer, number: int, delivered: bool = False, sending_s: float = 0.0) -> Peer | None:
        """Forget an outstanding assignment (delivered: the parent sent the piece, in sending_s seconds as the child
        timed it, 0 when it did not say); returns its parent if known."""
        current = child.outstanding.pop(number, None)
        if current is None:
            return None
        self.live -= 1
        child.pending &= ~(1 << number)
        parent = self.registry.peers.get(current.parent_id)
        if delivered and parent is not None:
            self.delivered_bytes[zone_path(child.host.location, parent.host.location)] += current.size
        if parent is not None and (child.peer_id, number) in parent.uploading:
            parent.uploading.discard((child.peer_id, number))
            serving = parent.serving.get(number, 0) - 1
            if serving > 0:
                parent.serving[number] = serving
            else:
                parent.serving.pop(number, None)
            if parent.host.seed_peer:
                self._seed_ended(self.registry.tasks.get(child.task_id), number)
            if self.keep_in_zone:
                self._crossing(child, parent, number, -1)
            was_free = parent.host.free_slots > 0
            now = self.clock()
            assigned_at = current.deadline - self.timeout
            since = max(assigned_at, now - sending_s) if delivered and sending_s > 0 else assigned_at
            parent.host.ended(current.size, delivered, since, now)
            self._upload_changed(parent.host, was_free)
        return parent

    def release_all(self, child: Peer) -> int:
        """Give back every assignment of the child; returns how many had a known parent (slots freed)."""
        freed = [self.release(child, number) for number in list(child.outstanding)]
        return sum(1 for parent in freed if parent is not None)

    def drop_uploads(self, parent: Peer) -> list[Peer]:
        """Cancel every assignment served by parent; returns the children to refill."""
        children: dict[str, Peer] = {}
        for child_id, number in list(parent.uploading):
            child = self.registry.peers.get(child_id)
            if child is not None:
                self.release(child, number)
                children[child_id] = child
        parent.uploading.clear()
        parent.serving.clear()
        return list(children.values())

    def due(self, now: float) -> Iterator[tuple[Peer, int, str]]:
        """Outstanding assignments past their deadline: (child, piece number, parent id), each once."""
        if len(self.deadlines) > 4 * self.live + 1024:
            self._compact()
        while self.deadlines and self.deadlines[0][0] <= now:
            deadline, child_id, number, parent_id = heapq.heappop(self.deadlines)
            child = self.registry.peers.get(child_id)
            if child is None:
                continue
            current = child.outstanding.get(number)
            if current is None or current.parent_id != parent_id or current.deadline != deadline:
                continue
            yield child, number, parent_id

    def _compact(self) -> None:
        """Rebuild the deadline heap from the live assignments only."""
        self.deadlines[:] = [
            (o.deadline, peer.peer_id, number, o.parent_id)
            for peer in self.registry.peers.values()
            for number, o in peer.outstanding.items()
        ]
        heapq.heapify(self.deadlines)

    def _upload_changed(self, host: Host, was_free: bool) -> None:
        """After an upload started or ended: note the host when it went from busy to free."""
        if (host.free_slots > 0) != was_free:
            self.registry.refresh_host(host)
            if not was_free:
                self.unblocked[host.host_id] = host

    def _crossing(self, child: Peer, parent: Peer, number: int, change: int) -> None:
        """One child more (or fewer) fetches the piece into its zone from a parent in another zone."""
        zone = zone_of(child.host.location)
        task = self.registry.tasks.get(child.task_id)
        if task is None or not zone or zone_of(parent.host.location) == zone:
            return
        key = (zone, number)
        count = task.crossing.get(key, 0) + change
        if count > 0:
            task.crossing[key] = count
        else:
            task.crossing.pop(key, None)

    def _seed_started(self, task: Task, number: int) -> None:
        """One child more fetches the piece from a seed peer."""
        count = task.seed_inflight.get(number, 0) + 1
        task.seed_inflight[number] = count
        if count >= self.seed_fanout:
            task.seed_saturated |= 1 << number

    def _seed_ended(self, task: Task | None, number: int) -> None:
        """One child fewer fetches the piece from a seed peer."""
        if task is None:
            return
        left = task.seed_inflight.get(number, 0) - 1
        if left > 0:
            task.seed_inflight[number] = left
        else:
            task.seed_inflight.pop(number, None)
        if left < self.seed_fanout:
            task.seed_saturated &= ~(1 << number)
