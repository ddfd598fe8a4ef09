"""A request for the next window of a read for the swarm, sent while the window before it is read: the origin's
answer (a redirect, a CDN's first byte) takes its round trips while the reader is busy, not between windows."""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import AbstractAsyncContextManager

from peer.origin import OriginResponse


class Ahead:
    """One request opened ahead of time: pieces first..last, whose answer is awaited only when they are due."""

    def __init__(self, first: int, last: int, opener: AbstractAsyncContextManager[OriginResponse]) -> None:
        self.first, self.last = first, last
        self._opener = opener
        self._opening: asyncio.Future[OriginResponse] = asyncio.ensure_future(opener.__aenter__())
        self._closed = False

    async def response(self) -> OriginResponse:
        """The origin's answer (its error, if it failed)."""
        return await self._opening

    async def close(self) -> None:
        """Release the request (once): cancelled while it is sent, its body's reader stopped once answered."""
        if self._closed:
            return
        self._closed = True
        if not self._opening.done():
            self._opening.cancel()
        await asyncio.wait({self._opening})
        if self._opening.cancelled() or self._opening.exception() is not None:
            return  # never opened: nothing to release (its error is nobody's: its window was not due)
        with contextlib.suppress(Exception):
            await self._opener.__aexit__(None, None, None)
