"""Reading the origin into a task's store: all of it, or the runs of pieces the store lacks (Range requests)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Protocol

from dfcommon.content import ContentRequest
from dfcommon.errors import DigestMismatch, OriginError
from dfcommon.pieces import DEFAULT_PIECE_SIZE, piece_size_for
from peer.origin import OriginClient, open_origin
from peer.piece.assembler import PieceAssembler
from peer.piece.model import PieceSpec
from peer.storage import TaskStore
from peer.storage.space import disk_error
from peer.tokenbucket import TokenBucket, acquire_all


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
        self._answered = False
        self._stopped = False  # the last body was left early: its remaining pieces are no longer wanted
        self._storing = False  # a piece is being written and offered
        self._applied: list[Callable[[], None]] = []  # to call once that is done

    def narrow(self, allowed: int | None, applied: Callable[[], None] | None = None) -> None:
        """Read the pieces in allowed from now on (another peer reads the others; or more, when a reader left): a
        body that reaches a piece outside them is left there, and a piece outside them that was arriving is not
        stored. applied is called once no piece outside them can be stored any more: at once, or when the piece
        being written now has been offered (the supernode then hands what was taken from this read to another
        peer, less what this read stored meanwhile)."""
        self.allowed = allowed
        if applied is None:
            return
        if self._storing:
            self._applied.append(applied)
        else:
            applied()

    def _allows(self, number: int) -> bool:
        return self.allowed is None or bool(self.allowed >> number & 1)

    def _left_to_others(self, store: TaskStore, number: int, last: int | None) -> bool:
        """True when the body's next piece exists but is no longer this read's to read."""
        return number < store.meta.piece_count and (last is None or number <= last) and not self._allows(number)

    async def run(self, store: TaskStore | None) -> None:
        """Read into store what it lacks, or (None) all of the content into a store made for it; a read narrowed
        meanwhile goes on with the runs of pieces still its own (the supernode may have given it others since)."""
        if store is None:
            store = await self._read_all()
            if not self._stopped:
                return
            self._stopped = False
        elif store.meta.content_length >= 0:
            self._answer(store)
        while wanted := [n for n in store.missing() if self._allows(n)]:
            first, last = missing_runs(wanted)[0]
            start = store.span(first)[0]
            last_offset, last_size = store.span(last)
            end = last_offset + last_size - 1
            async with open_origin(self.http, self.request, start, end) as response:
                response.cut_at(store.meta.piece_size)
                total = await self._cut(store, response.body, first, last)
            if self._stopped:
                self._stopped = False  # narrowed: the pieces left in this run are others' now
            elif total != end - start + 1:
                raise OriginError(f"origin sent {total} of {end - start + 1} bytes for {self.display_url}")

    async def _read_all(self) -> TaskStore:
        async with open_origin(self.http, self.request) as response:
            length = response.length
            piece_size = piece_size_for(length, self.piece_base) if length >= 0 else self.piece_base
            store = self.listener.create_store(length, piece_size)
            response.cut_at(store.meta.piece_size)
            if length >= 0:
                self._answer(store)
            total = await self._cut(store, response.body, 0, None)
        if self._stopped:
            return store  # narrowed: other peers read the rest
        if length < 0:
            store.set_length(total)
            self._answer(store)
            for number in range(store.meta.piece_count):  # held back until the length was known
                digest = store.piece_digest(number)
                if digest:
                    self.listener.offer(number, digest)
        elif total != length:
            raise OriginError(f"origin sent {total} of {length} bytes for {self.display_url}")
        return store

    def _answer(self, store: TaskStore) -> None:
        self._answered = True
        self.listener.answered(store)

    async def _cut(self, store: TaskStore, body: AsyncIterator[memoryview], first: int, last: int | None) -> int:
        """Cut an origin body into pieces first..last (None: to the end), verify where hashes are known, store."""
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
                if last is not None and number > last:
                    raise OriginError(f"origin sent more bytes than asked for {self.display_url}")
                take = min(len(view), assembler.piece.size - assembler.received)
                assembler.add(assembler.received, view[:take])
                view = view[take:]
                total += take
                if assembler.full:
                    if not self._allows(number):  # narrowed while it arrived: another peer reads it
                        self._stopped = True
                        return total
                    await self._store(store, assembler)
                    number += 1
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
        self._storing = True
        try:
            await self._write(store, assembler)
        finally:
            self._storing = False
            applied, self._applied = self._applied, []
            for callback in applied:
                callback()

    async def _write(self, store: TaskStore, assembler: PieceAssembler) -> None:
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
