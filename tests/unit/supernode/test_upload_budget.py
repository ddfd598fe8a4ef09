"""A parent's upload budget: no more pieces at once than its uplink sends in UPLOAD_BUDGET_S, at the rate its
children saw; before any upload finished, INITIAL_PIECES."""

from __future__ import annotations

import itertools
import random

import pytest
from swarm_builder import PIECE, Swarm, pairs

from supernode.resource.host import INITIAL_PIECES, RATE_SAMPLE_S, SAMPLE_SPANS, UPLOAD_BUDGET_S, Host, _add_span
from supernode.resource.piece import PieceReport


def host(slots: int = 8, rate: float = 0.0) -> Host:
    return Host("h", "h", "127.0.0.2", 65000, slots, "", 0.0, rate=rate, piece_bytes=PIECE)


@pytest.mark.parametrize(
    ("slots", "rate", "inflight", "expected"),
    [
        pytest.param(8, 0.0, 0, INITIAL_PIECES, id="unmeasured-host-takes-initial-pieces"),
        pytest.param(8, 0.0, INITIAL_PIECES, 0, id="unmeasured-host-full"),
        pytest.param(8, 10 * PIECE / UPLOAD_BUDGET_S, 0, 10, id="budget-in-pieces"),
        pytest.param(8, 100 * PIECE / UPLOAD_BUDGET_S, 0, 32, id="slots-cap-a-fast-host"),
        pytest.param(8, 10 * PIECE / UPLOAD_BUDGET_S, 4, 6, id="budget-less-inflight"),
        pytest.param(8, 0.1 * PIECE / UPLOAD_BUDGET_S, 0, 1, id="a-slow-host-still-sends-one"),
        pytest.param(8, 0.1 * PIECE / UPLOAD_BUDGET_S, 1, 0, id="a-slow-host-one-at-a-time"),
    ],
)
def test_free_slots(slots: int, rate: float, inflight: int, expected: int) -> None:
    h = host(slots, rate)
    for _ in range(inflight):
        h.started(PIECE)
    assert h.free_slots == expected


def test_rate_is_bytes_delivered_per_second_of_sending() -> None:
    h = host()
    h.started(PIECE)
    h.started(PIECE)
    h.ended(PIECE, True, 10.0, 10.5)
    h.ended(PIECE, True, 10.0, 11.0)  # two pieces in 1 s of sending
    assert h.rate == pytest.approx(2 * PIECE)
    h.started(PIECE)  # idle time between does not count
    h.ended(PIECE, True, 50.0, 50.0 + RATE_SAMPLE_S)
    assert h.rate == pytest.approx((2 * PIECE + PIECE / RATE_SAMPLE_S) / 2)


def test_overlapping_and_separate_sends_count_once() -> None:
    h = host()
    for _ in range(4):
        h.started(PIECE)
    h.ended(PIECE, True, 1.0, 1.1)
    h.ended(PIECE, True, 1.05, 1.2)  # overlaps the first: [1.0, 1.2]
    h.ended(PIECE, True, 1.3, 1.4)  # a gap of 0.1 s that is not sending
    h.ended(PIECE, True, 0.95, 1.45)  # covers the gap and more: [0.95, 1.45]
    assert h.rate == pytest.approx(4 * PIECE / 0.5)


def test_many_short_sends_with_idle_time_between_end_a_sample() -> None:
    """Short pieces with idle time between (one piece at a time, 5 ms each) give a rate once SAMPLE_SPANS of them
    were sent, long before RATE_SAMPLE_S of sending, and the idle time is not part of it."""
    h = host()
    h.started(PIECE)  # one more stays in flight throughout
    for n in range(SAMPLE_SPANS):
        h.started(PIECE)
        assert h.rate == 0
        h.ended(PIECE, True, n * 1.0, n * 1.0 + 0.005)
    assert h.rate == pytest.approx(PIECE / 0.005)


def test_failed_uploads_lower_the_rate() -> None:
    h = host(rate=100 * PIECE)
    h.started(PIECE)
    h.ended(PIECE, False, 0.0, 30.0)  # timed out: 30 s of sending, nothing delivered
    assert h.rate == pytest.approx(50 * PIECE)


def test_the_rate_leaves_out_the_time_assignments_and_reports_spend_on_the_way() -> None:
    """A child reports how long it took from asking for the piece to storing it: the time before (the assignment on
    its way to the child) and after (the report on its way back) is not the parent's sending time."""
    swarm = Swarm(2)  # its seed peer still reads: it sends no piece a plain peer holds
    swarm.add("a", [0, 1], rate=0.0)  # not measured yet: INITIAL_PIECES at once
    child = swarm.add("c")
    parent = swarm.peers["a"].host
    assert sorted(pairs(swarm.scheduler.connect(child, 2))) == [(0, "a"), (1, "a")]
    assert parent.inflight == 2
    swarm.clock.now += 0.5  # 0.1 s of latency, 0.4 s of sending both pieces one after the other
    swarm.scheduler.report(child, [PieceReport(0, "a", True, sending_s=0.2), PieceReport(1, "a", True, sending_s=0.4)])
    assert parent.rate == pytest.approx(2 * PIECE / 0.4)


def test_a_slow_parent_serves_one_child_at_a_time_and_the_others_go_elsewhere() -> None:
    """On a slow uplink a parent that sends to k children at once makes each wait k times longer, with nothing to
    pass on meanwhile: the second child takes the piece from the seed instead, and the third waits."""
    swarm = Swarm(1, seed_slots=1, rate=PIECE / UPLOAD_BUDGET_S)
    swarm.add("a", [0], rate=PIECE / UPLOAD_BUDGET_S)
    first, second, third = swarm.add("c1"), swarm.add("c2"), swarm.add("c3")
    assert pairs(swarm.scheduler.connect(first, 4)) == [(0, "a")]
    assert pairs(swarm.scheduler.connect(second, 4)) == [(0, "seed")]
    assert pairs(swarm.scheduler.connect(third, 4)) == []
    swarm.clock.now += 1.0
    assert pairs(swarm.scheduler.report(first, [PieceReport(0, "a", True)])) == [(0, "c1")]  # to the third
    assert swarm.peers["a"].host.inflight == 0
    assert swarm.peers["c3"].outstanding[0].parent_id == "c1"


def test_free_slots_follow_every_start_and_end() -> None:
    """free_slots is kept, not computed when read: after any mix of starts and ends it is what a host built with the
    same slots, pieces in flight and rate has."""
    rng = random.Random(7)
    h = host(slots=2)
    started: list[float] = []
    now = 0.0
    for _ in range(2_000):
        now += rng.uniform(0.0, 0.05)
        if started and (rng.random() < 0.5 or len(started) >= h.capacity):
            h.ended(PIECE, rng.random() < 0.9, started.pop(rng.randrange(len(started))), now)
        else:
            h.started(PIECE)
            started.append(now)
        fresh = Host(
            "f", "f", "127.0.0.3", 65000, h.upload_slots, "", 0.0,
            inflight=h.inflight, inflight_bytes=h.inflight_bytes, rate=h.rate, piece_bytes=h.piece_bytes,
        )  # fmt: skip
        assert h.free_slots == fresh.free_slots


@pytest.mark.parametrize("seed", range(20))
def test_sending_time_is_the_union_of_the_spans(seed: int) -> None:
    """_add_span's running total is the length of the union of all spans added, however they overlap."""
    rng = random.Random(seed)
    spans: list[list[float]] = []
    total = 0.0
    covered: set[int] = set()
    clock = 0
    for _ in range(200):
        clock += rng.randrange(0, 4)
        start = max(0, clock - rng.randrange(0, 12))
        end = start + rng.randrange(0, 10)
        total += _add_span(spans, float(start), float(end))
        covered.update(range(start, end))
        assert total == pytest.approx(len(covered))
        assert all(a[1] < b[0] for a, b in itertools.pairwise(spans))
