"""Bounded slot pools (upload slots, streams): held for a whole call, released on every way out, shown on /metrics."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from dfcommon.errors import DandelionError
from dfcommon.metrics import SLOTS_BUSY, SLOTS_LIMIT


class Busy(DandelionError):
    """Every slot of a pool is in use."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class SlotPool:
    """At most `limit` holders at once; gauge dandelion_slots_busy{pool=name} counts them.

    hold() is a plain (synchronous) context manager: taking and giving back a slot never awaits, so neither can
    be interrupted by a cancellation, and the release runs on every exit of the `with` block.
    """

    def __init__(self, name: str, limit: int, busy_message: str) -> None:
        if limit < 1:
            raise ValueError(f"slot pool {name} needs at least one slot, not {limit}")
        self.name = name
        self.limit = limit
        self.busy = 0
        self._busy_message = busy_message
        self._gauge = SLOTS_BUSY.labels(name)
        SLOTS_LIMIT.labels(name).set(limit)

    @contextmanager
    def hold(self) -> Iterator[None]:
        """One slot for the duration of the block; Busy (RESOURCE_EXHAUSTED) when none is free."""
        if self.busy >= self.limit:
            raise Busy(self._busy_message)
        self.busy += 1
        self._gauge.inc()
        try:
            yield
        finally:
            self.busy -= 1
            self._gauge.dec()
