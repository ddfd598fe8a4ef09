"""Reading the origin into a task's store: all of it, or the runs of pieces the store lacks (Range requests)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Protocol

from dfcommon.content import ContentRequest
from dfcommon.errors import DigestMismatch, OriginError
from dfcommon.pieces import DEFAULT_PIECE_SIZE, piece_size_for
from dfcommon.read_windows import FIRST_WINDOW, window_last
from peer.download.origin_ahead import Ahead
from peer.origin import OriginClient, OriginResponse, open_origin
from peer.origin_resume import MAX_STALLED_RESUMES, RESUME_BACKOFF, retryable
from peer.piece.assembler import PieceAssembler
from peer.piece.model import PieceSpec
from peer.storage import TaskStore
from peer.storage.space import disk_error
from peer.tokenbucket import TokenBucket, acquire_all

log = logging.getLogger(__name__)

# The share of a window's read time an origin's answer must take before a read asks for each next window while it
# reads one: below it, asking ahead would gain little and only leave a window unread when a read is cut short.
AHEAD_WAIT_SHARE = 0.05
AHEAD_MIN_WAIT_S = 0.005  # answers sooner than this are a near origin's, whatever the window's read time


class OriginListener(Protocol):
    """What a read tells the download."""

    def create_store(self, content_length: int, piece_size: int) -> TaskStore:
        """The origin answered a read from the start: the store to cut the content into."""

    def answered(self, store: TaskStore) -> None:
        """The content's length is known (at once, or at the end of content sent without one)."""

    def stored(self, number: int, size: int, digest: str) -> None:
        """A piece is written, with its digest."""

    def offer(self, number: int, digest: str) -> None:
        """A stored piece may be offered to the swarm (its length is known by now)."""


def missing_runs(missing: list[int]) -> list[tuple[int, int]]:
    """Contiguous runs (first, last) of sorted piece numbers."""
    runs: list[tuple[int, int]] = []
    for number in missing:
        if runs and runs[-1][1] == number - 1:
            runs[-1] = (runs[-1][0], number)
        else:
            runs.append((number, number))
    return runs


class OriginRead:
    """One read of the origin for a download: pieces whose digest it knows (hashes) are verified against it, the
    others hashed with algorithm (default BLAKE3) as they are written."""

    def __init__(
        self,
        http: OriginClient,
        request: ContentRequest,
        display_url: str,
        buckets: list[TokenBucket],
        cache_dir: Path,
        hashes: Mapping[int, str],
        algorithm: str,
        listener: OriginListener,
        allowed: int | None = None,
        piece_base: int = DEFAULT_PIECE_SIZE,
    ) -> None:
        self.http = http
        self.piece_base = piece_base  # the piece size for content read whole (grown for very large content)
        self.request = request
        self.display_url = display_url
        self.buckets = buckets
        self.cache_dir = cache_dir
        self.hashes = hashes
        self.algorithm = algorithm
        self.listener = listener
        self.allowed = allowed  # the pieces to read, a bitmask (None: every piece)
        self.windowed = False  # ask in windows (dfcommon.read_windows): the supernode may split the read
        self._answered = False
        self._ahead: Ahead | None = None  # the next window's request, sent while a window is read
        # Ask for the next window while reading one: set once an origin's answer took AHEAD_WAIT_SHARE of the time
        # its window then took to read (a far origin, a redirect); a near one answers at once, and a read cut
        # short (a failover, a kill) then leaves no window asked for and unread.
        self.ask_ahead = False
        self._requests = 0  # requests of the loop in run timed so far (the first is not judged)
        self._stopped = False  # the last body was left early: its remaining pieces are no longer wanted

    def narrow(self, allowed: int | None) -> None:
        """Read the pieces in allowed from now on (another peer reads the others; or more, when a reader left): a
        body that reaches a piece outside them is left there."""
        self.allowed = allowed

    def _allows(self, number: int) -> bool:
        return self.allowed is None or bool(self.allowed >> number & 1)

    def _left_to_others(self, store: TaskStore, number: int, last: int | None) -> bool:
        """True when the body's next piece exists but is no longer this read's to read."""
        return number < store.meta.piece_count and (last is None or number <= last) and not self._allows(number)

    async def run(self, store: TaskStore | None) -> None:
        """Read into store what it lacks, or (None) all of the content into a store made for it; a read narrowed
        meanwhile goes on with the runs of pieces still its own (the supernode may have given it others since)."""
        try:
            if store is None:
                store, done = await self._read_all()
                if done:
                    return
                self._stopped = False
            elif store.meta.content_length >= 0:
                self._answer(store)
            while run := self._next_run(store, -1):
                first, last = run
                ahead = await self._take_ahead(run)
                current = ahead or self._request(store, first, last)
                try:
                    asked, sent = time.monotonic(), current
                    current, response = await self._answer_of(current, store)
                    answered = time.monotonic()
                    response.cut_at(store.meta.piece_size)
                    start, end = store.span(first)[0], sum(store.span(last)) - 1
                    total = await self._cut(store, response.body, first, last, (end - start + 1) // 2)
                    if ahead is None and current is sent:  # answered at once (not ahead, not after a retry)
                        self._timed(answered - asked, time.monotonic() - answered)
                finally:
                    await current.close()
                if self._stopped:
                    self._stopped = False  # narrowed: the pieces left in this run are others' now
                elif total != end - start + 1:
                    raise OriginError(f"origin sent {total} of {end - start + 1} bytes for {self.display_url}")
        finally:
            if self._ahead is not None:
                await self._ahead.close()
                self._ahead = None

    def _next_run(self, store: TaskStore, after: int) -> tuple[int, int] | None:
        """The next run of pieces past after that this read is to read and the store lacks (within one window)."""
        wanted = [n for n in store.missing() if n > after and self._allows(n)]
        if not wanted:
            return None
        first, last = missing_runs(wanted)[0]
        return (first, min(last, window_last(first, store.meta.piece_size)) if self.windowed else last)

    def _request(self, store: TaskStore, first: int, last: int, skip: int = 0) -> Ahead:
        """A request for pieces first..last (but their first skip bytes)."""
        start, end = store.span(first)[0] + skip, sum(store.span(last)) - 1
        return Ahead(first, last, open_origin(self.http, self.request, start, end))

    async def _answer_of(self, current: Ahead, store: TaskStore) -> tuple[Ahead, OriginResponse]:
        """The answer to a window's request; one that fails as a cut body may (the connection, an origin restarting)
        is sent again with the resumes' back-off and bounds (peer.origin_resume), so that a window survives what a
        body would. Returns the request answered (another than current after a retry)."""
        stalled = 0
        while True:
            try:
                return current, await current.response()
            except OriginError as exc:
                await current.close()
                if not retryable(exc):
                    raise
                if stalled >= MAX_STALLED_RESUMES:
                    raise OriginError(f"{exc} (gave up after {stalled} resumes)", exc.http_status) from None
                stalled += 1
                delay = RESUME_BACKOFF.delay(stalled)
                at = store.span(current.first)[0]
                log.info("%s; resuming at byte %d in %.1fs (resume %d)", exc, at, delay, stalled)
                await asyncio.sleep(delay)
                current = self._request(store, current.first, current.last)
            except BaseException:
                await current.close()  # cancelled: the caller closes the request it passed, not this one
                raise

    def _timed(self, answer_s: float, read_s: float) -> None:
        """A request's answer took answer_s, and its window read_s after it: ask ahead from now on if it matters.
        A read's first request is not judged: it may open a connection (and a TLS session, a worker thread)."""
        self._requests += 1
        if self._requests == 1 or self.ask_ahead or not self.windowed:
            return
        if answer_s > max(AHEAD_MIN_WAIT_S, AHEAD_WAIT_SHARE * read_s):
            self.ask_ahead = True
            log.info(
                "origin of %s answers in %.0f ms, its window read in %.0f ms: asking for each next window ahead",
                self.display_url,
                answer_s * 1000,
                read_s * 1000,
            )

    def _send_ahead(self, store: TaskStore, after: int) -> None:
        """A windowed read asks for its next window while it reads this one (see ask_ahead)."""
        if not (self.windowed and self.ask_ahead) or self._ahead is not None:
            return
        if (run := self._next_run(store, after)) is not None:
            self._ahead = self._request(store, *run)

    async def _take_ahead(self, run: tuple[int, int]) -> Ahead | None:
        """The request sent ahead for run, if that is the one; another (the read was narrowed or grew since) is
        closed."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and (ahead.first, ahead.last) != run:
            await ahead.close()
            return None
        return ahead

    async def _read_all(self) -> tuple[TaskStore, bool]:
        """Read from the start into a store made for the content once its length is known: all of it, or (windowed)
        the whole pieces of its first window; True when nothing is left to read."""
        async with open_origin(self.http, self.request, window=FIRST_WINDOW if self.windowed else 0) as response:
            length = response.total
            piece_size = piece_size_for(length, self.piece_base) if length >= 0 else self.piece_base
            store = self.listener.create_store(length, piece_size)
            response.cut_at(store.meta.piece_size)
            if length >= 0:
                self._answer(store)
            if response.length != length:  # the first window's request: the rest is asked for window by window
                await self._read_first_window(store, response.length, response.body)
                return store, False
            total = await self._cut(store, response.body, 0, None)
        if self._stopped:
            return store, False  # narrowed: other peers read the rest
        if length < 0:
            store.set_length(total)
            self._answer(store)
            for number in range(store.meta.piece_count):  # held back until the length was known
                digest = store.piece_digest(number)
                if digest:
                    self.listener.offer(number, digest)
        elif total != length:
            raise OriginError(f"origin sent {total} of {length} bytes for {self.display_url}")
        return store, True

    async def _read_first_window(self, store: TaskStore, asked: int, body: AsyncIterator[memoryview]) -> None:
        """Read window 0 from the first request's body (asked bytes long) and, when its pieces are larger than that,
        from a request for the rest of it."""
        last = window_last(0, store.meta.piece_size)
        end = sum(store.span(last))
        rest = self._request(store, 0, last, asked) if asked < end else None
        try:
            await self._cut(store, _then(body, rest, store.meta.piece_size), 0, last, end // 2)
        finally:
            if rest is not None:
                await rest.close()

    def _answer(self, store: TaskStore) -> None:
        self._answered = True
        self.listener.answered(store)

    async def _cut(
        self, store: TaskStore, body: AsyncIterator[memoryview], first: int, last: int | None, ahead_at: int = -1
    ) -> int:
        """Cut an origin body into pieces first..last (None: to the end), verify where hashes are known, store; the
        body is left once piece last is stored. A windowed read asks for its next window once ahead_at bytes are in
        (half a window: its round trips are hidden, and a read cut short leaves at most that much of it unread)."""
        number = first
        total = 0

        def assembler_for(n: int) -> PieceAssembler:
            offset, size = store.span(n)
            return PieceAssembler(PieceSpec(n, offset, size, self.hashes.get(n, "")))

        assembler = assembler_for(number)
        if not self._allows(number):
            self._stopped = True
            return total
        async for data in body:
            await acquire_all(self.buckets, len(data))
            view = memoryview(data)
            while view:
                take = min(len(view), assembler.piece.size - assembler.received)
                assembler.add(assembler.received, view[:take])
                view = view[take:]
                total += take
                if 0 <= ahead_at <= total and last is not None:
                    ahead_at = -1
                    self._send_ahead(store, last)
                if assembler.full:
                    await self._store(store, assembler)
                    number += 1
                    if last is not None and number > last:
                        return total  # what was asked for is in: the rest of the body, if any, is not read
                    if self._left_to_others(store, number, last):
                        self._stopped = True  # another peer reads from here on: leave the body
                        return total
                    assembler = assembler_for(number)
        if assembler.received:
            if store.meta.content_length >= 0:
                raise OriginError(f"origin ended early for {self.display_url}")
            assembler.shrink_to_received()
            store.meta.content_length = total + first * store.meta.piece_size
            await self._store(store, assembler)
        return total

    async def _store(self, store: TaskStore, assembler: PieceAssembler) -> None:
        try:
            digest = await assembler.store(store, self.algorithm)
        except DigestMismatch as exc:
            raise DigestMismatch(f"origin content of {self.display_url} differs from the swarm's: {exc}") from None
        except OSError as exc:
            left = store.meta.content_length - store.completed_length()
            raise disk_error(exc, self.cache_dir, left if left > 0 else assembler.piece.size) from None
        self.listener.stored(assembler.piece.number, assembler.piece.size, digest)
        if self._answered:
            self.listener.offer(assembler.piece.number, digest)


async def _then(first: AsyncIterator[memoryview], rest: Ahead | None, piece_size: int) -> AsyncIterator[memoryview]:
    """The chunks of a body, then (if any) those of the request for the rest, cut at piece_size."""
    async for chunk in first:
        yield chunk
    if rest is not None:
        response = await rest.response()
        response.cut_at(piece_size)
        async for chunk in response.body:
            yield chunk
