"""Token bucket pacing with an injected clock."""

from __future__ import annotations

import asyncio
import time

import pytest

from peer.tokenbucket import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_unlimited_never_waits() -> None:
    bucket = TokenBucket(0)
    assert bucket.unlimited
    assert bucket.reserve(10**12) == 0.0


def test_burst_then_paced() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000, burst=1000, clock=clock)
    assert bucket.reserve(1000) == 0.0
    assert bucket.reserve(500) == pytest.approx(0.5)
    clock.now = 0.5  # the debt is paid back
    assert bucket.reserve(0) == 0.0
    clock.now = 10.0  # refill is capped at the burst
    assert bucket.reserve(1000) == 0.0
    assert bucket.reserve(1) == pytest.approx(0.001)


def test_request_larger_than_burst_waits_proportionally() -> None:
    clock = FakeClock()
    bucket = TokenBucket(100, burst=100, clock=clock)
    assert bucket.reserve(1100) == pytest.approx(10.0)


@pytest.mark.parametrize(("rate", "burst", "default"), [(4 << 20, None, 1 << 20), (100 << 20, None, 25 << 20)])
def test_default_burst(rate: int, burst: int | None, default: int) -> None:
    assert TokenBucket(rate, burst).burst == default


async def test_acquire_sleeps_at_rate() -> None:
    bucket = TokenBucket(1_000_000, burst=100_000)
    started = time.monotonic()
    for _ in range(5):
        await bucket.acquire(100_000)
    # 500 kB at 1 MB/s with a 100 kB burst: about 0.4 s.
    assert 0.3 <= time.monotonic() - started < 1.5
    await asyncio.sleep(0)
