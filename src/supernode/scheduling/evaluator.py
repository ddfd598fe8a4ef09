"""Pure scoring of a candidate parent for one piece, given by its parts (parents.choose calls it for every holder
it looks at): higher is better. Which holders are candidates at all (trusted, with a free slot) is the registry's
Task.free_holders. The ranking is a parent policy chosen by name (supernode --parent-policy, POLICIES): `default`
(rank_of) or `nearest` (nearest_rank)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

# Weights of the score's parts; each part is in [0, 1].
FREE_SLOTS_WEIGHT = 0.4
SUCCESS_WEIGHT = 0.4
LOCALITY_WEIGHT = 0.2
LOCATION_LEVELS = 3  # "region|zone|rack"
ZONE_LEVELS = 2  # a zone is "region|zone": the `nearest` policy keeps pieces in it (ParentPolicy.keep_in_zone)
# Tiers of rank_of(), best last.
BUSY_PEER, SEED, IDLE_PEER = 0, 1, 2
TIERS = 3


def success_rate(ok: int, failed: int) -> float:
    """Laplace-smoothed share of successful uploads: a new parent scores 0.5."""
    return (ok + 1) / (ok + failed + 2)


@functools.lru_cache(maxsize=4096)
def shared_levels(a: str, b: str) -> int:
    """How many "region|zone|rack" levels two locations have in common, from the left (0 when either is unknown)."""
    if not a or not b:
        return 0
    shared = 0
    for left, right in zip(a.split("|")[:LOCATION_LEVELS], b.split("|")[:LOCATION_LEVELS], strict=False):
        if left != right:
            break
        shared += 1
    return shared


@functools.lru_cache(maxsize=4096)
def locality(a: str, b: str) -> float:
    """Share of "region|zone|rack" levels two locations have in common, from the left (cached too: score_of asks
    for every holder it ranks)."""
    return shared_levels(a, b) / LOCATION_LEVELS


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


def nearest_rank(
    free_slots: int,
    capacity: int,
    ok: int,
    failed: int,
    location: str,
    is_seed: bool,
    sending_piece: bool,
    child_location: str,
) -> tuple[int, float]:
    """Sort key of the `nearest` policy: the location levels shared with the child first (same rack, then zone, then
    region, then elsewhere), then rank_of's tiers and score among holders equally near. A holder in the child's zone
    is chosen even while it sends the piece to another child, or when it is a seed peer, over an idle one in
    another zone: for fleets whose traffic between zones costs money or crosses a slow link. Hosts say where they
    are with dfdaemon --location; a child without one ranks every holder as rank_of does."""
    tier, score = rank_of(free_slots, capacity, ok, failed, location, is_seed, sending_piece, child_location)
    return (shared_levels(location, child_location) * TIERS + tier, score)


@functools.lru_cache(maxsize=4096)
def zone_of(location: str) -> str:
    """A location's zone, its first ZONE_LEVELS levels ("region|zone"); "" when it gives fewer (no zone known)."""
    levels = location.split("|")
    return "|".join(levels[:ZONE_LEVELS]) if len(levels) >= ZONE_LEVELS and all(levels[:ZONE_LEVELS]) else ""


# Where a delivered piece came from, seen from its child (AssignmentBook.delivered_bytes, the supernode's
# dandelion_piece_bytes_delivered{path}): both in one zone, in two zones, or either without a zone.
WITHIN_ZONE, BETWEEN_ZONES, NO_ZONE = "within_zone", "between_zones", "no_zone"
ZONE_PATHS = (WITHIN_ZONE, BETWEEN_ZONES, NO_ZONE)


def zone_path(child_location: str, parent_location: str) -> str:
    """WITHIN_ZONE, BETWEEN_ZONES or NO_ZONE for a piece sent from parent_location to child_location."""
    child_zone, parent_zone = zone_of(child_location), zone_of(parent_location)
    if not child_zone or not parent_zone:
        return NO_ZONE
    return WITHIN_ZONE if child_zone == parent_zone else BETWEEN_ZONES


def nearest_top(child_location: str) -> int:
    """The best first part of a nearest_rank key for a child there: an idle peer sharing every level it gives."""
    levels = min(LOCATION_LEVELS, len(child_location.split("|"))) if child_location else 0
    return levels * TIERS + IDLE_PEER


class ParentPolicy(NamedTuple):
    """How parents.choose ranks the free holders of a piece for a child, chosen by name (supernode --parent-policy).

    rank gives a holder's sort key from its parts (larger is better); top(child_location) is the first part of the
    best key any holder can have for that child: once PARENT_SAMPLE holders were ranked and one has it, choose stops
    looking."""

    name: str
    rank: Callable[[int, int, int, int, str, bool, bool, str], tuple[int, float]]
    top: Callable[[str], int]
    summary: str
    # A child waits for a holder in its zone (zone_of) whenever one holds the piece, busy or not, or one fetches it
    # from another zone now, rather than take it from another zone: a piece crosses into a zone about once
    # (parents.zone_holds).
    keep_in_zone: bool = False


DEFAULT = ParentPolicy(
    "default",
    rank_of,
    lambda _child_location: IDLE_PEER,
    "idle peers, then seed peers, then peers already sending the piece; by free slots, success rate, locality",
)
NEAREST = ParentPolicy(
    "nearest",
    nearest_rank,
    nearest_top,
    "the holders sharing most of the child's region|zone|rack first (dfdaemon --location), then as default; a "
    "piece held in the child's zone comes from there, waiting for a free slot",
    keep_in_zone=True,
)
POLICIES = {policy.name: policy for policy in (DEFAULT, NEAREST)}
