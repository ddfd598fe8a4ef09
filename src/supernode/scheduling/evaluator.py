"""Pure scoring of a candidate parent for one piece, given by its parts (parents.choose calls it for every holder
it looks at): higher is better. Which holders are candidates at all (trusted, with a free slot) is the registry's
Task.free_holders."""

from __future__ import annotations

import functools

# Weights of the score's parts; each part is in [0, 1].
FREE_SLOTS_WEIGHT = 0.4
SUCCESS_WEIGHT = 0.4
LOCALITY_WEIGHT = 0.2
LOCATION_LEVELS = 3  # "region|zone|rack"
# Tiers of rank_of(), best last.
BUSY_PEER, SEED, IDLE_PEER = 0, 1, 2


def success_rate(ok: int, failed: int) -> float:
    """Laplace-smoothed share of successful uploads: a new parent scores 0.5."""
    return (ok + 1) / (ok + failed + 2)


@functools.lru_cache(maxsize=4096)
def locality(a: str, b: str) -> float:
    """Share of "region|zone|rack" levels two locations have in common, from the left."""
    if not a or not b:
        return 0.0
    shared = 0
    for left, right in zip(a.split("|")[:LOCATION_LEVELS], b.split("|")[:LOCATION_LEVELS], strict=False):
        if left != right:
            break
        shared += 1
    return shared / LOCATION_LEVELS


def score_of(free_slots: int, capacity: int, ok: int, failed: int, location: str, child_location: str) -> float:
    """Weighted score of an eligible parent, given by its parts, for a child at child_location."""
    free = free_slots / capacity if capacity > 0 else 0.0
    return (
        FREE_SLOTS_WEIGHT * free
        + SUCCESS_WEIGHT * success_rate(ok, failed)
        + LOCALITY_WEIGHT * locality(location, child_location)
    )


def rank_of(
    free_slots: int,
    capacity: int,
    ok: int,
    failed: int,
    location: str,
    is_seed: bool,
    sending_piece: bool,
    child_location: str,
) -> tuple[int, float]:
    """Sort key (larger is better): peers, then the seed, then peers already sending this piece; then by score.

    The seed is the parent of last resort, but a parent that sends one piece to several children gives each a
    share of its uplink, and they all finish together with nothing to relay yet; the seed's own uplink is the
    better second source (unless it reads the origin about as fast as its uplink sends: parents.first_copies_only).
    When every child wants the newest piece, it then spreads from the seed and from each
    new holder to one child at a time, by doubling, and no child waits while a parent is free. Plain arguments,
    not an object: a frozen dataclass costs some 3 µs to build, several times the ranking itself."""
    tier = SEED if is_seed else BUSY_PEER if sending_piece else IDLE_PEER
    return (tier, score_of(free_slots, capacity, ok, failed, location, child_location))
