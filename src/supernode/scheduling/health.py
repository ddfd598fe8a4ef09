"""Failure bookkeeping of the scheduler: unreachable hosts, children that keep failing.

A host a child could not reach is offered as a parent again when it heart-beats. A child that failed to fetch one piece
HOPELESS_FAILURES times (from any parent, busy ones included) with no piece arriving meanwhile is hopeless: better sent
back to source than given the same failing parents again. Per piece: a parent that dies with a whole window outstanding
fails each of those pieces only once.
"""

from __future__ import annotations

from collections.abc import Callable

from supernode.resource.host import Host

HOPELESS_FAILURES = 8


class Health:
    """Which hosts are unreachable until when, and how often each child failed since its last piece."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        # child peer id -> piece number -> failed fetches since the child's last piece (not its own fault)
        self._failing: dict[str, dict[int, int]] = {}

    def unreachable(self, host: Host) -> None:
        """A child could not reach the host: mark it (offered again when it heart-beats)."""
        host.unreachable = True

    def served(self, child_id: str) -> None:
        """A piece arrived at the child (from a parent, or from the origin): its failure counts start over."""
        self._failing.pop(child_id, None)

    def failed(self, child_id: str, number: int) -> None:
        """The child failed to fetch the piece for a reason that is not its own fault."""
        counts = self._failing.setdefault(child_id, {})
        counts[number] = counts.get(number, 0) + 1

    def forget(self, child_id: str) -> None:
        """The child stopped fetching from the swarm, or left."""
        self._failing.pop(child_id, None)

    def hopeless(self, child_id: str) -> bool:
        """True when the child failed to fetch one piece HOPELESS_FAILURES times since its last piece."""
        counts = self._failing.get(child_id)
        return counts is not None and max(counts.values()) >= HOPELESS_FAILURES
