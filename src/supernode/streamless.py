"""Peers without a SyncPieces stream: registered and not opened yet, or readers whose stream closed.

A dfdaemon opens its peer's stream as soon as RegisterTask answers. A peer whose stream never opens is one whose
answer was lost: the call timed out at the client, or its connection broke, after the supernode had taken it. Its
host may register the task again (or at another supernode) and never learns this peer id. A reader's stream may
also close for good while its host lives on: the dfdaemon then reads the rest for itself and reports only at the end.
Either way, while a reader reads, its task's other peers hear the task every heartbeat interval
(Readers.tell_waiters), which keeps them from giving up on the swarm: they waited, for good or for the whole read,
for pieces offered on a stream that was not there. So a reader without a stream for READER_STREAMLESS_S no longer
reads (the pieces nobody holds go to another peer, as when a reader leaves), and a peer whose stream never opened is
forgotten after PEER_UNOPENED_S.

A stream that opens late (a supernode far behind takes up new calls late) finds its peer a plain peer, or gone: the
dfdaemon then registers the task again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from supernode.readers import Readers
from supernode.resource.peer import Peer
from supernode.scheduling.scheduler import Scheduler

log = logging.getLogger(__name__)

READER_STREAMLESS_S = 10.0  # the others wait this long at most (a dfdaemon opens its stream as soon as it is answered)
PEER_UNOPENED_S = 300.0  # a peer is forgotten: its registration's answer was lost, or the stream is hopelessly late


class Streamless:
    """Peers without a stream, oldest first, and what becomes of them."""

    def __init__(self, scheduler: Scheduler, readers: Readers, leave: Callable[[str], None]) -> None:
        self._scheduler = scheduler
        self._readers = readers
        self._leave = leave  # the peer leaves its task (Swarm.leave_task)
        self.unopened: dict[str, float] = {}  # peer id -> when it registered; insertion order is registration order
        self.closed: dict[str, float] = {}  # reader's peer id -> when its stream closed, oldest first

    def registered(self, peer_id: str, now: float) -> None:
        """A peer registered: its stream is awaited."""
        self.unopened[peer_id] = now

    def opened(self, peer_id: str) -> None:
        """The peer's stream opened."""
        self.unopened.pop(peer_id, None)
        self.closed.pop(peer_id, None)

    def stream_closed(self, peer: Peer, now: float) -> None:
        """The peer's stream closed: awaited again when it reads for the swarm."""
        if self._reads(peer):
            self.closed[peer.peer_id] = now

    def sweep(self, now: float) -> None:
        """Readers without a stream for READER_STREAMLESS_S no longer read; peers whose stream has not opened in
        PEER_UNOPENED_S are forgotten (and peers that left meanwhile are no longer awaited)."""
        for peer_id, since in list(self.closed.items()):
            if now - since < READER_STREAMLESS_S:
                break  # the rest closed later
            del self.closed[peer_id]
            self._stop_reading(peer_id, "its stream closed")
        for peer_id, since in list(self.unopened.items()):
            if now - since < READER_STREAMLESS_S:
                break  # the rest registered later
            peer = self._scheduler.peers.get(peer_id)
            if peer is None:
                del self.unopened[peer_id]
            elif now - since >= PEER_UNOPENED_S:
                del self.unopened[peer_id]
                log.warning("peer forgotten task=%s peer=%s: its stream never opened", peer.task_id[:12], peer_id[:12])
                self._leave(peer_id)
            else:
                self._stop_reading(peer_id, "its stream never opened")

    def _reads(self, peer: Peer) -> bool:
        """True while the peer reads the origin for the swarm (all of it, or parts)."""
        task = self._scheduler.tasks.get(peer.task_id)
        return task is not None and (task.reads_all(peer) or bool(self._readers.reads_ranges(task, peer)))

    def _stop_reading(self, peer_id: str, why: str) -> None:
        """The peer, if it still reads without a stream, no longer does: another one reads what is unread."""
        peer = self._scheduler.peers.get(peer_id)
        if peer is None or peer_id in self._readers.streams or not self._reads(peer) or not self._readers.forget(peer):
            return
        log.warning(
            "reader task=%s peer=%s: %s (no stream for %.0fs or more); another peer reads",
            *(peer.task_id[:12], peer_id[:12], why, READER_STREAMLESS_S),
        )
        self._readers.replace(peer.task_id)
