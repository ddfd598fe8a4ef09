"""Failure bookkeeping of the scheduler: unreachable hosts, the seed's cool-down, children that keep failing.

A host a child could not reach is offered as a parent again when it heart-beats; the seed, which never heart-beats,
after a cool-down of 2 s doubling with each failure in a row up to 60 s (SEED_COOLDOWN), so its children go back to
source instead of asking it thousands of times a minute. A child that failed to fetch one piece HOPELESS_FAILURES
times (from any parent, busy ones included) with no piece arriving meanwhile is hopeless: better sent back to source
than given the same failing parents again. Per piece: a parent that dies with a whole window outstanding fails each
of those pieces only once.
"""

from __future__ import annotations

from collections.abc import Callable

from dfcommon.backoff import BackoffPolicy
from supernode.resource.host import Host

SEED_COOLDOWN = BackoffPolicy(base=2.0, cap=60.0, jitter=0.0)
HOPELESS_FAILURES = 8


class Health:
    """Which hosts are unreachable until when, and how often each child failed since its last piece."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._cooling: dict[str, tuple[float, Host]] = {}  # unreachable seed hosts: when they are offered again
        self._seed_failures: dict[str, int] = {}  # seed host id -> times in a row it was unreachable
        # child peer id -> piece number -> failed fetches since the child's last piece (not its own fault)
        self._failing: dict[str, dict[int, int]] = {}

    def unreachable(self, host: Host) -> None:
        """A child could not reach the host: mark it (a seed: with its cool-down, see SEED_COOLDOWN)."""
        host.unreachable = True
        if host.is_seed:
            failures = self._seed_failures.get(host.host_id, 0) + 1
            self._seed_failures[host.host_id] = failures
            self._cooling[host.host_id] = (self.clock() + SEED_COOLDOWN.delay(failures, lambda: 0.0), host)

    def cooled(self, now: float) -> list[Host]:
        """Seed hosts whose cool-down ended (offered again from now on)."""
        out = []
        for host_id, (until, host) in list(self._cooling.items()):
            if until <= now:
                del self._cooling[host_id]
                out.append(host)
        return out

    def served(self, child_id: str, parent: Host | None) -> None:
        """A piece arrived at the child (from parent's host, or from itself): its failure counts start over."""
        self._failing.pop(child_id, None)
        if parent is not None and parent.is_seed:
            self._seed_failures.pop(parent.host_id, None)

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
