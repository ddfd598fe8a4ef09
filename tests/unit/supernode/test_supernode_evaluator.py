"""Parent scoring as tables: free slots, success rate, locality, seed after idle peers, busy peers last."""

from __future__ import annotations

import pytest

from supernode.scheduling.evaluator import Candidate, best, locality, success_rate


def cand(
    free: int = 4,
    cap: int = 8,
    ok: int = 0,
    failed: int = 0,
    loc: str = "",
    seed: bool = False,
    bad: bool = False,
    sending: bool = False,
) -> Candidate:
    return Candidate(free, cap, ok, failed, loc, seed, bad, sending)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("r1|z1|k1", "r1|z1|k1", 1.0),
        ("r1|z1|k1", "r1|z1|k2", 2 / 3),
        ("r1|z1|k1", "r1|z2|k1", 1 / 3),
        ("r1|z1|k1", "r2|z1|k1", 0.0),
        ("", "r1", 0.0),
        ("r1", "r1|z1", 1 / 3),
    ],
)
def test_locality(a: str, b: str, expected: float) -> None:
    assert locality(a, b) == pytest.approx(expected)


@pytest.mark.parametrize(("ok", "failed", "expected"), [(0, 0, 0.5), (8, 0, 0.9), (0, 8, 0.1), (5, 5, 0.5)])
def test_success_rate(ok: int, failed: int, expected: float) -> None:
    assert success_rate(ok, failed) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("candidates", "child_location", "winner"),
    [
        pytest.param([cand(free=1), cand(free=7)], "", 1, id="more-free-slots"),
        pytest.param([cand(ok=0, failed=9), cand(ok=9, failed=0)], "", 1, id="higher-success-rate"),
        pytest.param([cand(loc="r2|z1"), cand(loc="r1|z1")], "r1|z1|k1", 1, id="closer-location"),
        pytest.param([cand(seed=True, free=8), cand(free=1, failed=5)], "", 1, id="seed-last-resort"),
        pytest.param([cand(seed=True), cand(bad=True, free=8, ok=99)], "", 0, id="bad-parent-excluded"),
        pytest.param([cand(free=0, ok=99), cand(free=1)], "", 1, id="no-free-slot-excluded"),
        pytest.param([cand(free=0), cand(bad=True)], "", None, id="nobody-eligible"),
        pytest.param([], "", None, id="no-candidates"),
        pytest.param([cand(seed=True)], "", 0, id="only-seed"),
        # A peer already sending this piece to another child comes after the seed, but before nobody.
        pytest.param([cand(sending=True, free=8, ok=99), cand(seed=True, free=1)], "", 1, id="seed-before-busy-peer"),
        pytest.param([cand(sending=True), cand(free=1, failed=5)], "", 1, id="idle-peer-before-busy-peer"),
        pytest.param([cand(sending=True)], "", 0, id="busy-peer-rather-than-nobody"),
    ],
)
def test_best(candidates: list[Candidate], child_location: str, winner: int | None) -> None:
    assert best(candidates, child_location) == winner
