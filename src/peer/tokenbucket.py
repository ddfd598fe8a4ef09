"""A token bucket that paces byte streams (upload and download limits)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    """Allows `rate` bytes per second on average with bursts up to `burst`; rate 0 means unlimited.

    Callers may overdraw: a request larger than the bucket waits for the debt to be paid back,
    so any request size works and the long-run rate is exact.
    """

    def __init__(self, rate: int, burst: int | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = max(0, rate)
        self.burst = burst if burst is not None else max(self.rate // 4, 1 << 20)
        self._clock = clock
        self._tokens = float(self.burst)
        self._last = clock()

    @property
    def unlimited(self) -> bool:
        """True when no limit applies."""
        return self.rate == 0

    def reserve(self, amount: int) -> float:
        """Take `amount` tokens now; returns how many seconds the caller must wait before using them."""
        if self.unlimited:
            return 0.0
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= amount
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    async def acquire(self, amount: int) -> None:
        """Wait until `amount` bytes may pass."""
        delay = self.reserve(amount)
        if delay > 0:
            await asyncio.sleep(delay)


async def acquire_all(buckets: list[TokenBucket], amount: int) -> None:
    """Wait on every bucket that limits this stream."""
    for bucket in buckets:
        await bucket.acquire(amount)
