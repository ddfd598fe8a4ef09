"""Exponential backoff with full jitter and a cap, shared by every retry loop (clock and random injectable)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class BackoffPolicy:
    """Delay before retry n (n >= 1): uniform in [base * 2**(n-1) * (1 - jitter), base * 2**(n-1)], at most cap.

    jitter=1 is "full jitter" (AWS architecture blog): retries of many clients that failed together spread out
    instead of arriving in waves.
    """

    base: float = 0.1  # seconds before the first retry (without jitter)
    cap: float = 10.0  # longest delay
    jitter: float = 0.5  # share of the delay that is random, 0..1

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base or not 0 <= self.jitter <= 1:
            raise ValueError("want 0 < base <= cap and 0 <= jitter <= 1")

    def ceiling(self, attempt: int) -> float:
        """The delay before retry attempt without jitter (0 for attempt < 1)."""
        if attempt < 1:
            return 0.0
        return min(self.cap, self.base * float(2 ** min(attempt - 1, 62)))

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """The jittered delay before retry attempt."""
        top = self.ceiling(attempt)
        return top * (1 - self.jitter * rand())


@dataclass
class Backoff:
    """Consecutive failures of one thing (a parent, a supernode) and when it may be tried again."""

    policy: BackoffPolicy = field(default_factory=BackoffPolicy)
    clock: Callable[[], float] = time.monotonic
    rand: Callable[[], float] = random.random
    failures: int = 0
    not_before: float = 0.0

    def fail(self) -> float:
        """Record a failure; returns the delay until the next try."""
        self.failures += 1
        wait = self.policy.delay(self.failures, self.rand)
        self.not_before = self.clock() + wait
        return wait

    def succeed(self) -> None:
        """Record a success: the next failure starts from the base delay again."""
        self.failures = 0
        self.not_before = 0.0

    def try_now(self) -> None:
        """It was seen to be back: the next try may come now (a failure then still backs off longer)."""
        self.not_before = 0.0

    def remaining(self) -> float:
        """Seconds until the next try is allowed (0 when it is)."""
        return max(0.0, self.not_before - self.clock())

    def ready(self) -> bool:
        """True when the next try is allowed now."""
        return self.remaining() <= 0

    async def wait(self) -> None:
        """Sleep until the next try is allowed."""
        left = self.remaining()
        if left > 0:
            await asyncio.sleep(left)
