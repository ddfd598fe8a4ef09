"""Rendezvous (highest random weight) hashing: which member of a set owns a key.

Every member gets a weight for the key from a hash of (key, member); the highest weight owns it. Whoever knows the
same members computes the same owner, with no coordination. Removing a member moves only the keys it owned (each to
its next-highest member); adding one takes from every other member only the keys it now wins. Used for a task's
supernode (peer.scheduler_cluster) and a task's seed peer (supernode.seed_peers).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def score(key: str, member: str) -> int:
    """The member's weight for the key: the first 8 bytes of SHA-256(key NUL member), big-endian."""
    return int.from_bytes(hashlib.sha256(f"{key}\0{member}".encode()).digest()[:8], "big")


def ranked(key: str, members: Iterable[str]) -> list[str]:
    """The members (each once) best first for the key: the owner, then who takes over when it is gone, ..."""
    return sorted(set(members), key=lambda member: (score(key, member), member), reverse=True)


def owner(key: str, members: Iterable[str]) -> str | None:
    """The member that owns the key (None when there is none)."""
    best: tuple[int, str] | None = None
    for member in members:
        weight = (score(key, member), member)
        if best is None or weight > best:
            best = weight
    return None if best is None else best[1]


__all__ = ["owner", "ranked", "score"]
