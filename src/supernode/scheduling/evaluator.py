"""Pure scoring of candidate parents for one piece: higher is better."""

from __future__ import annotations

import functools
from dataclasses import dataclass

# Weights of the score's parts; each part is in [0, 1].
FREE_SLOTS_WEIGHT = 0.4
SUCCESS_WEIGHT = 0.4
LOCALITY_WEIGHT = 0.2
LOCATION_LEVELS = 3  # "region|zone|rack"
# Tiers of rank(), best last.
BUSY_PEER, SEED, IDLE_PEER = 0, 1, 2


@dataclass(frozen=True)
class Candidate:
    """What the evaluator needs to know of a parent."""

    free_slots: int
    capacity: int
    uploads_ok: int
    uploads_failed: int
    location: str
    is_seed: bool = False  # a seed peer: the parent of last resort
    bad: bool = False
    sending_piece: bool = False  # already sends this very piece to another child


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


def eligible(candidate: Candidate) -> bool:
    """A parent can be chosen: not marked bad and with a free upload slot."""
    return not candidate.bad and candidate.free_slots > 0


def score_of(free_slots: int, capacity: int, ok: int, failed: int, location: str, child_location: str) -> float:
    """Weighted score of an eligible parent, given by its parts, for a child at child_location."""
    free = free_slots / capacity if capacity > 0 else 0.0
    return (
        FREE_SLOTS_WEIGHT * free
        + SUCCESS_WEIGHT * success_rate(ok, failed)
        + LOCALITY_WEIGHT * locality(location, child_location)
    )


def rank(candidate: Candidate, child_location: str) -> tuple[int, float]:
    """Sort key (larger is better): peers, then the seed, then peers already sending this piece; then by score.

    The seed is the parent of last resort, but a parent that sends one piece to several children gives each a
    share of its uplink, and they all finish together with nothing to relay yet; the seed's own uplink is the
    better second source. When every child wants the newest piece, it then spreads from the seed and from each
    new holder to one child at a time, by doubling, and no child waits while a parent is free.
    """
    c = candidate
    return rank_of(
        c.free_slots, c.capacity, c.uploads_ok, c.uploads_failed, c.location, c.is_seed, c.sending_piece, child_location
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
    """rank() of a parent given by its parts: what parents.choose calls for every holder it looks at, with no
    Candidate built (a frozen dataclass costs some 3 µs to build, several times the ranking itself)."""
    tier = SEED if is_seed else BUSY_PEER if sending_piece else IDLE_PEER
    return (tier, score_of(free_slots, capacity, ok, failed, location, child_location))


def best(candidates: list[Candidate], child_location: str) -> int | None:
    """Index of the best eligible candidate, or None when none is eligible."""
    chosen: int | None = None
    chosen_key: tuple[int, float] | None = None
    for index, candidate in enumerate(candidates):
        if not eligible(candidate):
            continue
        key = rank(candidate, child_location)
        if chosen_key is None or key > chosen_key:
            chosen, chosen_key = index, key
    return chosen
