"""The check of a download's whole content against its digest, hashed here as it arrives."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from dfcommon.digest import parse_digest
from dfcommon.pieces import CHUNK_SIZE
from peer.storage import TaskStore


class ContentCheck:
    """Whether the content matches the request's digest (docs/protocol.md, step 5): hashed here, in order, as its
    pieces arrive (overlapping the download), whoever sent them; nothing vouches for the whole but this check.
    `changed` returns the event set at the download's next change (a piece stored)."""

    def __init__(self, digest: str, changed: Callable[[], asyncio.Event]) -> None:
        self.digest = digest
        self._changed = changed
        self.hashes: dict[int, str] = {}  # piece number -> the digest this peer checked it against, or computed
        self.unhashed = False  # some piece was assigned without a digest (or with two)
        self._hashing: asyncio.Task[str] | None = None

    @property
    def hashing(self) -> asyncio.Task[str] | None:
        """The running or finished hash of the content, once started."""
        return self._hashing

    def watch(self, store: TaskStore) -> None:
        """A store is in use: hash it as it fills."""
        if self.digest and not store.complete:
            self.start(store)

    def start(self, store: TaskStore) -> None:
        """Hash the content in order as it arrives (from disk), unless that already runs."""
        if self._hashing is None and self.digest:
            self._hashing = asyncio.create_task(self._follow(store))

    def assigned(self, number: int, digest: str) -> None:
        """A piece was assigned with this digest ("" none): two different digests for one piece, or none, mean a
        mismatch of the whole cannot be blamed on the pieces' authors."""
        if not digest:
            self.unhashed = True
            return
        if self.hashes.setdefault(number, digest) != digest:
            self.unhashed = True

    def cancel(self) -> None:
        """Stop hashing (the download ended)."""
        if self._hashing is not None and not self._hashing.done():
            self._hashing.cancel()

    async def result(self, store: TaskStore) -> str:
        """The content's digest, "<algorithm>:<hex>" (hashing what is left)."""
        self.start(store)
        assert self._hashing is not None
        return await self._hashing

    async def _follow(self, store: TaskStore) -> str:
        digest = parse_digest(self.digest)
        hasher = digest.hasher()
        # One buffer, read into chunk by chunk, instead of a new piece-sized bytes per piece: with 4 MiB pieces those
        # came on top of the pieces being received and stored, and raised the peak RSS (bench/README.md).
        buffer = memoryview(bytearray(CHUNK_SIZE))
        number = 0
        while True:
            count = store.meta.piece_count
            if store.meta.content_length >= 0 and number >= count:
                return f"{digest.algorithm}:{hasher.hexdigest()}"
            if store.has(number):
                offset, size = store.span(number)

                def update(offset: int = offset, size: int = size) -> None:
                    end = offset + size
                    while offset < end:
                        read = store.read_into(offset, buffer[: min(CHUNK_SIZE, end - offset)])
                        if read <= 0:  # shorter than held: the digest will not match
                            return
                        hasher.update(buffer[:read])
                        offset += read

                await asyncio.to_thread(update)
                number += 1
            else:
                await self._changed().wait()
