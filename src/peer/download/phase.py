"""The phases of one download and the moves between them: a transition table that refuses any other move."""

from __future__ import annotations

import enum
import logging

log = logging.getLogger(__name__)


class Phase(enum.Enum):
    """Where a download is."""

    STARTING = "starting"  # looking at the cache
    CACHED = "cached"  # complete in the local cache: nothing to fetch
    SWARM = "swarm"  # registered: pieces come from parents over the task's SyncPieces stream
    READING = "reading"  # reading the origin for the swarm, each stored piece offered on the stream
    SOURCING = "sourcing"  # fetching what it lacks from the origin for itself (no swarm, or the swarm gave up)
    VERIFYING = "verifying"  # every piece held: the whole content is checked against its digest
    DONE = "done"  # verified and complete in the cache
    FAILED = "failed"  # ended with an error; nothing of it is cached


TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    # STARTING -> VERIFYING: a partial task kept from before a restart that holds every piece, with no supernode.
    Phase.STARTING: frozenset({Phase.CACHED, Phase.SWARM, Phase.SOURCING, Phase.VERIFYING, Phase.FAILED}),
    Phase.CACHED: frozenset({Phase.DONE, Phase.FAILED}),
    # SWARM -> SWARM: registered again (the supernode forgot this peer) on a new stream.
    Phase.SWARM: frozenset({Phase.SWARM, Phase.READING, Phase.SOURCING, Phase.VERIFYING, Phase.FAILED}),
    # READING -> SWARM: another peer became the reader (after this one registered again); READING -> SOURCING: the
    # stream is gone and the read goes on for this peer alone; READING -> READING: registered again while reading.
    Phase.READING: frozenset({Phase.READING, Phase.SWARM, Phase.SOURCING, Phase.VERIFYING, Phase.FAILED}),
    Phase.SOURCING: frozenset({Phase.VERIFYING, Phase.FAILED}),
    Phase.VERIFYING: frozenset({Phase.DONE, Phase.FAILED}),
    Phase.DONE: frozenset(),
    Phase.FAILED: frozenset(),
}


class InvalidMove(RuntimeError):
    """A move the transition table does not allow: a bug in the download's code."""


class DownloadPhase:
    """A download's current phase; move() follows TRANSITIONS."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.current = Phase.STARTING

    def move(self, to: Phase) -> None:
        """Go to phase `to`; InvalidMove when the table does not allow it from here."""
        if to not in TRANSITIONS[self.current]:
            raise InvalidMove(f"download {self.task_id[:12]} cannot go from {self.current.value} to {to.value}")
        if to is not self.current:
            log.debug("task=%s %s -> %s", self.task_id[:12], self.current.value, to.value)
        self.current = to

    @property
    def ended(self) -> bool:
        """True once DONE or FAILED."""
        return self.current in (Phase.DONE, Phase.FAILED)
