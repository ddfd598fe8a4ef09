"""What the supernode sends on each peer's SyncPieces stream: the events, and one outbox queue per connected peer.

The rpc layer drains an outbox into SyncPiecesResponse messages; everything here runs on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from dfcommon.errors import DandelionError
from supernode.resource.peer import Peer, PeerState
from supernode.resource.task import Task
from supernode.scheduling.assignments import Assignment
from supernode.scheduling.scheduler import Scheduler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskChanged:
    """Send the task's current metadata."""

    task: Task


@dataclass(frozen=True)
class Assigned:
    """Send piece assignments."""

    assignments: list[Assignment]


@dataclass(frozen=True)
class GoToSource:
    """Tell the peer to fetch the origin itself; with offer, to read it for the swarm and report each piece with
    its digest (piece_digest: the algorithm) as soon as it stored it: the pieces in ranges (first, last), fetching
    the others from the swarm meanwhile, or (no ranges) every piece it lacks."""

    reason: str
    offer: bool = False
    piece_digest: str = ""
    ranges: tuple[tuple[int, int], ...] = ()
    piece_size: int = 0  # with offer: the base piece size to cut the content into


@dataclass(frozen=True)
class StreamEnd:
    """End the stream: normally (error None) or with the error's status."""

    error: DandelionError | None = None


@dataclass(frozen=True)
class Beat:
    """Answer a heartbeat the peer's host sent on the stream: the heartbeat interval from now on."""

    interval_ms: int


@dataclass(frozen=True)
class RenewGrant:
    """Send the peer a fresh access grant (its writer signs it; see SchedulerService.SyncPieces)."""


StreamEvent = TaskChanged | Assigned | GoToSource | Beat | RenewGrant | StreamEnd


class Outboxes:
    """One queue of stream events per peer with an open SyncPieces stream."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.queues: dict[str, asyncio.Queue[StreamEvent]] = {}

    def __contains__(self, peer_id: object) -> bool:
        return peer_id in self.queues

    def open(self, peer_id: str) -> asyncio.Queue[StreamEvent]:
        """A new stream for the peer (an older one ends: replaced)."""
        self.end(peer_id, DandelionError("replaced by a newer stream"))
        outbox: asyncio.Queue[StreamEvent] = asyncio.Queue()
        self.queues[peer_id] = outbox
        return outbox

    def is_current(self, peer_id: str, outbox: asyncio.Queue[StreamEvent]) -> bool:
        """True when outbox is the peer's open stream (not one replaced or ended meanwhile)."""
        return self.queues.get(peer_id) is outbox

    def close(self, peer_id: str, outbox: asyncio.Queue[StreamEvent]) -> bool:
        """The stream ended on the peer's side; False when it had been replaced or ended already."""
        if self.queues.get(peer_id) is not outbox:
            return False
        del self.queues[peer_id]
        return True

    def send(self, peer_id: str, event: StreamEvent) -> bool:
        """Queue an event for the peer; False when it has no open stream."""
        outbox = self.queues.get(peer_id)
        if outbox is None:
            return False
        outbox.put_nowait(event)
        return True

    def deliver(self, assignments: list[Assignment]) -> None:
        """Send each child its assignments, in one batch per child."""
        if not assignments:
            return
        by_child: dict[str, list[Assignment]] = {}
        for assignment in assignments:
            by_child.setdefault(assignment.child_id, []).append(assignment)
        for child_id, batch in by_child.items():
            outbox = self.queues.get(child_id)
            if outbox is not None:
                outbox.put_nowait(Assigned(batch))

    def broadcast(self, task: Task) -> None:
        """Send the task's metadata to each of its connected peers."""
        for peer_id in list(task.peers):
            outbox = self.queues.get(peer_id)
            if outbox is not None:
                outbox.put_nowait(TaskChanged(task))

    def end(self, peer_id: str, error: DandelionError | None) -> None:
        """End the peer's stream (normally when error is None); its assignments go back to the pool."""
        outbox = self.queues.pop(peer_id, None)
        if outbox is not None:
            outbox.put_nowait(StreamEnd(error))
            peer = self.scheduler.peers.get(peer_id)
            if peer is not None:
                self.deliver(self.scheduler.disconnect(peer))

    def to_source(self, task: Task, peer: Peer, reason: str) -> None:
        """Tell a downloading peer to fetch what it lacks from the origin itself."""
        outbox = self.queues.get(peer.peer_id)
        if outbox is not None and peer.state is PeerState.RUNNING:
            outbox.put_nowait(GoToSource(reason))
            self.deliver(self.scheduler.set_state(peer, PeerState.BACK_TO_SOURCE))
            log.info("back to source task=%s peer=%s: %s", task.task_id[:12], peer.peer_id[:12], reason)

    def complete(self, task: Task, peer: Peer) -> bool:
        """End the peer's stream once it holds every piece (a consumer of content with a digest checks the whole
        of it before it hands it out)."""
        if not task.is_complete(peer):
            return False
        if peer.state is PeerState.RUNNING:
            self.deliver(self.scheduler.set_state(peer, PeerState.SUCCEEDED))
            log.info("peer complete task=%s peer=%s", task.task_id[:12], peer.peer_id[:12])
        self.end(peer.peer_id, None)
        return True
