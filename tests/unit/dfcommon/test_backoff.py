"""The shared backoff helper: delays, jitter, cap and the failure clock, with an injected clock and random."""

from __future__ import annotations

import pytest

from dfcommon.backoff import Backoff, BackoffPolicy


@pytest.mark.parametrize(
    ("attempt", "rand", "want"),
    [
        (0, 0.0, 0.0),  # no failure yet: no wait
        (1, 0.0, 0.1),  # base, no jitter drawn
        (2, 0.0, 0.2),
        (3, 0.0, 0.4),
        (4, 1.0, 0.4),  # 0.8 halved by the full share of jitter (0.5)
        (8, 0.0, 10.0),  # 12.8 capped
        (60, 0.0, 10.0),
        (10_000, 0.5, 7.5),  # huge attempt numbers do not overflow
    ],
)
def test_delay_table(attempt: int, rand: float, want: float) -> None:
    policy = BackoffPolicy(base=0.1, cap=10.0, jitter=0.5)
    assert policy.delay(attempt, lambda: rand) == pytest.approx(want)


@pytest.mark.parametrize(("base", "cap", "jitter"), [(0, 1, 0.5), (2, 1, 0.5), (1, 2, -0.1), (1, 2, 1.5)])
def test_invalid_policy(base: float, cap: float, jitter: float) -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(base, cap, jitter)


def test_failures_push_the_next_try_out_and_success_resets() -> None:
    now = [100.0]
    backoff = Backoff(BackoffPolicy(base=1.0, cap=4.0, jitter=0.0), clock=lambda: now[0], rand=lambda: 0.0)
    assert backoff.ready()
    assert [backoff.fail() for _ in range(4)] == [1.0, 2.0, 4.0, 4.0]
    assert not backoff.ready()
    assert backoff.remaining() == pytest.approx(4.0)
    now[0] += 3.0
    assert backoff.remaining() == pytest.approx(1.0)
    now[0] += 1.0
    assert backoff.ready()
    backoff.succeed()
    assert backoff.failures == 0
    assert backoff.fail() == 1.0


def test_full_jitter_spreads_between_zero_and_ceiling() -> None:
    policy = BackoffPolicy(base=1.0, cap=8.0, jitter=1.0)
    assert policy.delay(3, lambda: 0.0) == pytest.approx(4.0)
    assert policy.delay(3, lambda: 0.999) == pytest.approx(0.004)
