"""When this host's next heartbeat to one supernode is due.

A supernode tells the interval in every answer. It is longer while the host has no peer there (supernode.hosts.
IDLE_FACTOR), and the usual one at registration and on piece streams (a host with a stream has a peer there). While
the supernode is down the host asks again at the usual interval, and when a piece stream opens while it beats
seldom it beats on the stream at once, to be told the usual interval.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

MIN_INTERVAL_S = 0.2


class HeartbeatSchedule:
    """The intervals told by one supernode, and the wait until the next heartbeat there."""

    def __init__(self, interval: float = 5.0) -> None:
        self.told = interval  # seconds: what the supernode's last answer said
        self.usual = interval  # seconds: what it says to a host with a peer there
        self._at_once = False
        self._wake = asyncio.Event()

    def answered(self, interval_ms: int, usual: bool) -> None:
        """An answer gave an interval (0: none, keep it); usual: at registration or on a piece stream."""
        if interval_ms:
            self.told = max(MIN_INTERVAL_S, interval_ms / 1000)
            if usual:
                self.usual = self.told

    def stream_opened(self) -> None:
        """A piece stream opened there: beat on it at once when told to beat seldom."""
        if self.told > self.usual:
            self._at_once = True
            self._wake.set()

    def replan(self) -> None:
        """The supernode went down: the wait under way is measured again (by the usual interval)."""
        self._wake.set()

    async def wait(self, since: float, up: Callable[[], bool]) -> None:
        """Until `since` (event loop time) plus the interval told while up() or the usual one while not, or until a
        piece stream opened while beating seldom."""
        loop = asyncio.get_running_loop()
        while not self._at_once:
            left = since + (self.told if up() else self.usual) - loop.time()
            if left <= 0:
                break
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._wake.wait()
        self._at_once = False
