"""What piece failures mean for one download: parents' cool-downs, when to give up on the swarm, local faults."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable

from dfcommon.backoff import Backoff, BackoffPolicy
from peer.piece import failures
from peer.piece.model import PieceOutcome
from peer.storage import Storage, TaskStore
from peer.storage.space import FULL_ERRNOS, disk_error

# A parent that failed waits 0.2 s before it is asked again, then 0.4, 0.8 ... up to 5 s (jittered by half), so a
# wedged parent costs a handful of calls a minute per stream instead of thousands.
PARENT_BACKOFF = BackoffPolicy(base=0.2, cap=5.0, jitter=0.5)
# Give up on the swarm when, since the last piece that arrived, every failure was a parent that could not be
# reached (not a busy one) and this long passed: the scheduler then has nobody else to offer.
UNREACHABLE_GIVE_UP_S = 5.0
# Pieces that could not be stored here (the cache disk) before the download fails with that cause.
LOCAL_FAILURE_LIMIT = 3
_UNREACHABLE = frozenset({failures.PARENT_UNAVAILABLE, failures.TIMEOUT, failures.PARENT_MISSING_PIECE})


class SwarmHealth:
    """Per-parent backoff and the download's progress, fed with every piece outcome."""

    def __init__(
        self,
        policy: BackoffPolicy = PARENT_BACKOFF,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.rand = rand
        self._parents: dict[str, Backoff] = {}
        self.last_progress = clock()  # a piece arrived, or the supernode said the swarm is at work
        self.failing_since: float | None = None  # first failure after the last success
        self.only_unreachable = True  # every failure since the last success was an unreachable parent
        self.local_failures = 0
        self.parent_failures = 0  # calls to a parent that failed, for the log

    def record(self, outcome: PieceOutcome) -> None:
        """Take one piece's outcome (LOCAL failures are counted apart: they are not the parent's fault)."""
        now = self.clock()
        if outcome.success:
            self.last_progress = now
            self.failing_since = None
            self.only_unreachable = True
            backoff = self._parents.get(outcome.parent_peer_id)
            if backoff is not None:
                backoff.succeed()
            return
        if outcome.failure == failures.LOCAL:
            if outcome.local_errno:
                self.local_failures += 1
            return
        if self.failing_since is None:
            self.failing_since = now
        if outcome.failure not in _UNREACHABLE:
            self.only_unreachable = False
        backoff = self._parents.setdefault(
            outcome.parent_peer_id, Backoff(self.policy, clock=self.clock, rand=self.rand)
        )
        if backoff.ready():  # the pieces of one call, or of calls that failed together, count once
            backoff.fail()
            self.parent_failures += 1

    def news(self) -> None:
        """The supernode told the task's state (e.g. while a peer reads the origin for the swarm): the swarm is at
        work, so the stall timeout starts again."""
        self.last_progress = self.clock()

    def ready(self, parent_peer_id: str) -> bool:
        """True when the parent may be asked now (not in a cool-down)."""
        backoff = self._parents.get(parent_peer_id)
        return backoff is None or backoff.ready()

    def next_ready_in(self) -> float | None:
        """Seconds until the first cooling parent may be asked again (None when none cools)."""
        waits = [b.remaining() for b in self._parents.values() if not b.ready()]
        return min(waits) if waits else None

    def give_up_reason(self, stall_timeout: float) -> str:
        """Why the swarm cannot finish the download ("" while it still may)."""
        now = self.clock()
        if now - self.last_progress > stall_timeout:
            return f"no piece arrived from the swarm for {stall_timeout:.0f}s ({self.parent_failures} failed calls)"
        if (
            self.failing_since is not None
            and self.only_unreachable
            and now - self.failing_since >= UNREACHABLE_GIVE_UP_S
        ):
            return f"no parent could be reached for {now - self.failing_since:.0f}s"
        return ""

    def local_limit_reached(self) -> bool:
        """True when pieces failed to be stored here often enough to fail the download."""
        return self.local_failures >= LOCAL_FAILURE_LIMIT


def local_fault(storage: Storage, store: TaskStore | None, outcome: PieceOutcome, health: SwarmHealth) -> None:
    """A piece could not be stored here: on a full disk evict unpinned entries to make room for the rest of the
    content (CacheDiskError when that cannot be done); CacheDiskError once pieces keep failing to be stored."""
    if not outcome.local_errno:
        return
    needed = 0
    if store is not None:
        needed = max(0, store.meta.content_length - store.completed_length()) or store.meta.piece_size
    if outcome.local_errno in FULL_ERRNOS:
        storage.make_room(needed, exclude=store)
    if health.local_limit_reached():
        cause = OSError(outcome.local_errno, os.strerror(outcome.local_errno))
        raise disk_error(cause, storage.directory, needed)
