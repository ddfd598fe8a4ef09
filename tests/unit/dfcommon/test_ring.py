"""Rendezvous hashing (dfcommon.ring): fixed owners, stability when a member leaves or joins, an even spread."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from dfcommon import ring

MEMBERS = ["10.0.0.1:8002", "10.0.0.2:8002", "10.0.0.3:8002"]
KEYS = [hashlib.sha256(f"task-{n}".encode()).hexdigest() for n in range(3000)]


def reference_score(key: str, member: str) -> int:
    """The definition, written out here: the first 8 bytes of SHA-256("key NUL member"), big-endian."""
    return int.from_bytes(hashlib.sha256(key.encode() + b"\x00" + member.encode()).digest()[:8], "big")


@pytest.mark.parametrize(
    ("key", "members", "expected"),
    [
        ("t", ["a", "b", "c"], max(["a", "b", "c"], key=lambda m: reference_score("t", m))),
        ("x" * 64, MEMBERS, max(MEMBERS, key=lambda m: reference_score("x" * 64, m))),
        ("only", ["solo:1"], "solo:1"),
        ("none", [], None),
    ],
)
def test_owner_table(key: str, members: list[str], expected: str | None) -> None:
    assert ring.owner(key, members) == expected


def test_the_weights_are_the_documented_hash() -> None:
    assert ring.score("t", "a") == reference_score("t", "a") == 13578236503010902330


def test_order_and_duplicates_of_the_members_do_not_matter() -> None:
    for key in KEYS[:200]:
        assert ring.owner(key, MEMBERS) == ring.owner(key, list(reversed(MEMBERS))) == ring.owner(key, MEMBERS * 2)
        assert ring.ranked(key, MEMBERS) == ring.ranked(key, [*reversed(MEMBERS), MEMBERS[0]])


def test_ranked_starts_with_the_owner_and_holds_each_member_once() -> None:
    for key in KEYS[:200]:
        ranked = ring.ranked(key, MEMBERS)
        assert ranked[0] == ring.owner(key, MEMBERS)
        assert sorted(ranked) == sorted(MEMBERS)
        assert [reference_score(key, m) for m in ranked] == sorted(
            (reference_score(key, m) for m in MEMBERS), reverse=True
        )


@pytest.mark.parametrize("gone", MEMBERS)
def test_removing_a_member_moves_only_its_keys_to_their_next_owner(gone: str) -> None:
    left = [m for m in MEMBERS if m != gone]
    for key in KEYS:
        before = ring.owner(key, MEMBERS)
        after = ring.owner(key, left)
        if before != gone:
            assert after == before  # nobody else's keys move
        else:
            assert after == ring.ranked(key, MEMBERS)[1]  # the next on the key's ring takes it


def test_a_new_member_takes_only_keys_it_wins() -> None:
    grown = [*MEMBERS, "10.0.0.4:8002"]
    moved = [key for key in KEYS if ring.owner(key, grown) != ring.owner(key, MEMBERS)]
    assert all(ring.owner(key, grown) == "10.0.0.4:8002" for key in moved)
    assert 0.18 < len(moved) / len(KEYS) < 0.32  # about a quarter


def test_keys_spread_evenly() -> None:
    counts = Counter(ring.owner(key, MEMBERS) for key in KEYS)
    assert set(counts) == set(MEMBERS)
    assert all(900 < count < 1100 for count in counts.values()), counts
