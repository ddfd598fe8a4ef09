"""dfget's overall deadline: a fixed --timeout, or by default a base plus the content's size at a floor rate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from dfcommon.errors import DandelionError

T = TypeVar("T")

# The default deadline is BASE_S + size / FLOOR_RATE seconds, the size counted once dfget has seen it (or the
# bytes received so far, for content of unknown length; until then BASE_S): one minute for registration, the
# origin's first answer and a back-to-source fall-back, plus the whole content at 512 KiB/s (4 Mbit/s), a rate
# below which a download is better failed and retried: 1 GiB may take 35 minutes, 100 MiB 4.3 minutes.
BASE_S = 60.0
FLOOR_RATE = 512 << 10


class DeadlineExceeded(DandelionError):
    """dfget's deadline passed."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Deadline:
    """When a download must be over: fixed seconds (0: never), or None for the size-scaled default."""

    def __init__(self, seconds: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.fixed = seconds
        self.clock = clock
        self.started = clock()
        self.length = -1

    def saw_length(self, length: int) -> None:
        """The content's size is known (the default deadline grows with it)."""
        if length > self.length:
            self.length = length

    def limit(self) -> float:
        """Seconds the download may take in all (0: no limit)."""
        if self.fixed is not None:
            return self.fixed
        return BASE_S + max(0, self.length) / FLOOR_RATE

    def remaining(self) -> float | None:
        """Seconds left (None: no deadline)."""
        limit = self.limit()
        if limit <= 0:
            return None
        return limit - (self.clock() - self.started)

    async def run(self, work: Awaitable[T], length: Callable[[], int]) -> T:
        """Await work; cancel it and raise DeadlineExceeded when the deadline passes (length() is polled for the
        content's size, which moves the default deadline)."""
        task = asyncio.ensure_future(work)
        try:
            while True:
                self.saw_length(length())
                left = self.remaining()
                done, _ = await asyncio.wait({task}, timeout=None if left is None else min(max(left, 0), 1.0))
                if done:
                    return task.result()
                self.saw_length(length())
                left = self.remaining()
                if left is not None and left <= 0:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    raise DeadlineExceeded(self.describe())
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    def describe(self) -> str:
        """The one line dfget prints when the deadline passed."""
        limit = self.limit()
        if self.fixed is not None:
            return f"timed out after {limit:.0f}s (--timeout)"
        size = f"{self.length} bytes" if self.length >= 0 else "an unknown size"
        return (
            f"timed out after {limit:.0f}s (the default for {size}: {BASE_S:.0f}s + size at "
            f"{FLOOR_RATE >> 10} KiB/s; set --timeout)"
        )
