"""Big blob downloads admitted one at a time, in manifest order, while the admitted one runs fast.

docker downloads up to three layers at once but unpacks them one after another, in manifest order, each once it
is whole. Where the download through the swarm is bound by this host's CPU (the peer verifying pieces, the runtime
hashing and writing what it receives: both cores busy on a small host), three layers at a third of the speed each
all become whole at the very end, and the runtime unpacks every one of them after the last byte arrived. One at a
time at full speed, the first layer is whole after a third of the time and is unpacked while the next downloads.

The gate never idles the host. The next download goes in when every admitted one has moved slower than busy_rate
over the last interval (then the origin, the network or a slow client limits it, not this host), when one ends or
is downloaded (what is left to send is read from disk), and at once for blobs smaller than min_size (image configs)
or already in this host's cache.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable

BUSY_RATE = 50_000_000  # bytes/s: an admitted download moving at least this fast keeps the next one waiting
CHECK_INTERVAL_S = 0.25  # how often the first waiting download looks at the admitted ones' speed
START_GRACE_S = 0.5  # a download admitted this recently counts as fast (its first bytes take a round trip or two)
MIN_SIZE = 8 << 20  # smaller blobs are never held back
EXPECTED_LAYERS = 4096  # layer positions remembered from the image manifests served (the oldest are forgotten)


class Ticket:
    """One admitted download: how many bytes it has moved, and since when."""

    def __init__(self, now: float) -> None:
        self.admitted_at = now
        self.moved = 0
        self._checked_bytes = 0
        self._checked_at = now

    def advance(self, count: int) -> None:
        """count more bytes went to the client."""
        self.moved += count

    def fast(self, now: float, busy_rate: float) -> bool:
        """Whether it moved at least busy_rate since the last look (always within START_GRACE_S of admission)."""
        elapsed = now - self._checked_at
        rate = (self.moved - self._checked_bytes) / elapsed if elapsed > 0 else float("inf")
        self._checked_bytes, self._checked_at = self.moved, now
        return now - self.admitted_at < START_GRACE_S or rate >= busy_rate


class DownloadGate:
    """Admission of big downloads, in manifest order where a manifest named the blob, else in arrival order; see
    the module docstring for when the next one goes."""

    def __init__(
        self,
        busy_rate: float = BUSY_RATE,
        interval: float = CHECK_INTERVAL_S,
        min_size: int = MIN_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.busy_rate = busy_rate
        self.interval = interval
        self.min_size = min_size
        self.clock = clock
        self.active: list[Ticket] = []
        self._waiting: list[tuple[tuple[int, int], asyncio.Future[Ticket]]] = []
        self._serial = itertools.count()
        self._expected: OrderedDict[str, tuple[int, int]] = OrderedDict()

    @property
    def waiting(self) -> int:
        """Downloads waiting to be admitted."""
        return len(self._waiting)

    def expect(self, digests: list[str]) -> None:
        """An image manifest named these layers, in this order: runtimes unpack them in it, so they go in it
        (docker asks for three at once, in any order)."""
        serial = next(self._serial)
        for index, digest in enumerate(digests):
            self._expected[digest] = (serial, index)
            self._expected.move_to_end(digest)
        while len(self._expected) > EXPECTED_LAYERS:
            self._expected.popitem(last=False)

    async def admit(self, size: int, digest: str = "") -> Ticket | None:
        """Wait for this download's turn; None when it need not wait at all (small). release() the ticket after."""
        if size < self.min_size:
            return None
        if not self.active and not self._waiting:
            return self._enter()
        rank = self._expected.get(digest) or (next(self._serial), 0)
        # The ticket is made (and counted active) when the turn is given, not when this coroutine next runs:
        # otherwise another waiter's look could find no active download in between and go in too.
        turn: asyncio.Future[Ticket] = asyncio.get_running_loop().create_future()
        entry = (rank, turn)
        self._waiting.append(entry)
        try:
            while not turn.done():
                try:
                    async with asyncio.timeout(self.interval):
                        await asyncio.shield(turn)
                except TimeoutError:
                    if not turn.done() and min(self._waiting, key=_rank) is entry and self._all_slow():
                        self._waiting.remove(entry)
                        turn.set_result(self._enter())
        except asyncio.CancelledError:
            if turn.done():
                self.release(turn.result())  # it was let in as it was cancelled: pass its turn on
            else:
                self._waiting.remove(entry)
            raise
        return turn.result()

    def release(self, ticket: Ticket | None) -> None:
        """The download ended (done, failed or abandoned): the next one goes."""
        if ticket is not None and ticket in self.active:
            self.active.remove(ticket)
            self._admit_next()

    def _enter(self) -> Ticket:
        ticket = Ticket(self.clock())
        self.active.append(ticket)
        return ticket

    def _admit_next(self) -> None:
        if self._waiting:
            entry = min(self._waiting, key=_rank)
            self._waiting.remove(entry)
            entry[1].set_result(self._enter())

    def _all_slow(self) -> bool:
        now = self.clock()
        fast = [ticket.fast(now, self.busy_rate) for ticket in self.active]  # every ticket's checkpoint moves
        return not any(fast)


def _rank(entry: tuple[tuple[int, int], asyncio.Future[Ticket]]) -> tuple[int, int]:
    return entry[0]


class GatedBody:
    """A blob's response body that counts its bytes on its ticket and releases the ticket as soon as the blob is
    downloaded (the rest is read from disk), or when the body ends, fails or is closed (also before it started,
    which an async generator's finally would not see)."""

    def __init__(
        self, body: AsyncIterator[bytes], downloaded: Callable[[], bool], gate: DownloadGate, ticket: Ticket | None
    ) -> None:
        self._body = body
        self._downloaded = downloaded
        self._gate = gate
        self._ticket = ticket
        self._closed = False

    def __aiter__(self) -> GatedBody:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._body.__anext__()
        except BaseException:
            await self.aclose()
            raise
        ticket = self._ticket
        if ticket is not None:
            ticket.advance(len(chunk))
            if self._downloaded():
                self._gate.release(ticket)
                self._ticket = None
        return chunk

    async def aclose(self) -> None:
        """Release the ticket and close the inner body."""
        if not self._closed:
            self._closed = True
            self._gate.release(self._ticket)
            aclose = getattr(self._body, "aclose", None)
            if aclose is not None:
                await aclose()
