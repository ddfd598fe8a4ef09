"""Peers registered whose SyncPieces stream has not opened yet.

A dfdaemon opens its peer's stream as soon as RegisterTask answers. A peer whose stream never opens is one whose
answer was lost: the call timed out at the client, or its connection broke, after the supernode had taken it. Its
host may register the task again (or at another supernode) and never learns this peer id. Such a peer chosen to
read the origin for the swarm left every other peer of the task waiting for pieces that never came, for good: while
a reader reads, its task's other peers hear the task every heartbeat interval (Readers.tell_waiters), which keeps
them from giving up on the swarm. So a reader whose stream has not opened after READER_OPEN_S no longer reads
(another peer is chosen, as when a reader leaves), and any such peer is forgotten after PEER_OPEN_S.

A stream that opens late (a supernode far behind takes up new calls late) finds its peer a plain peer, or gone:
the dfdaemon then registers the task again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from supernode.readers import Readers
from supernode.scheduling.scheduler import Scheduler

log = logging.getLogger(__name__)

READER_OPEN_S = 10.0  # the others wait this long at most (a dfdaemon opens its stream as soon as it is answered)
PEER_OPEN_S = 120.0  # a peer is forgotten: its registration's answer was lost, or the stream is hopelessly late


class Unopened:
    """Peers whose stream has not opened, oldest registration first, and what becomes of them."""

    def __init__(self, scheduler: Scheduler, readers: Readers, leave: Callable[[str], None]) -> None:
        self._scheduler = scheduler
        self._readers = readers
        self._leave = leave  # the peer leaves its task (Swarm.leave_task)
        self.since: dict[str, float] = {}  # peer id -> when it registered (insertion order is registration order)

    def registered(self, peer_id: str, now: float) -> None:
        """A peer registered: its stream is awaited."""
        self.since[peer_id] = now

    def opened(self, peer_id: str) -> None:
        """The peer's stream opened."""
        self.since.pop(peer_id, None)

    def sweep(self, now: float) -> None:
        """Readers whose stream has not opened in READER_OPEN_S no longer read; peers whose stream has not opened
        in PEER_OPEN_S are forgotten (and peers that left meanwhile are no longer awaited)."""
        for peer_id, since in list(self.since.items()):
            age = now - since
            if age < READER_OPEN_S:
                break  # the rest registered later
            peer = self._scheduler.peers.get(peer_id)
            if peer is None:
                del self.since[peer_id]
            elif age >= PEER_OPEN_S:
                del self.since[peer_id]
                log.info("peer forgotten task=%s peer=%s: its stream never opened", peer.task_id[:12], peer_id[:12])
                self._leave(peer_id)
            elif self._readers.forget(peer):
                log.warning(
                    "reader task=%s peer=%s: its stream has not opened after %.0fs; another peer reads",
                    *(peer.task_id[:12], peer_id[:12], age),
                )
                self._readers.replace(peer.task_id)
