"""Serving the seed's pieces: bounded upload slots, 1 MiB chunks read with os.pread."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Sequence

import grpc

from dfcommon.errors import DandelionError, NotFound
from dfcommon.metrics import PEER_BYTES_SERVED
from dfcommon.pieces import CHUNK_SIZE
from supernode.resource.piece import PieceMeta
from supernode.seed.store import SeedStore

# Bytes read from disk per worker-thread hop.
READ_SPAN = 4 * CHUNK_SIZE


class Busy(DandelionError):
    """Every upload slot is in use."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class SeedUploads:
    """Streams verified pieces of the seed's content files."""

    def __init__(self, store: SeedStore, slots: int, verified: Callable[[str], Sequence[PieceMeta] | None]) -> None:
        self.store = store
        self.slots = slots
        self.active = 0
        self._verified = verified

    async def chunks(self, task_id: str, numbers: Sequence[int]) -> AsyncIterator[tuple[int, int, bytes]]:
        """(piece number, offset in piece, bytes) for each requested piece, in order."""
        pieces = self._verified(task_id)
        if pieces is None:
            raise NotFound(f"unknown task {task_id[:80]}")
        wanted = []
        for number in numbers:
            if number >= len(pieces):
                raise NotFound(f"piece {number} of task {task_id[:12]} is not held by the seed")
            wanted.append(pieces[number])
        if self.active >= self.slots:
            raise Busy(f"seed upload slots busy ({self.slots})")
        self.active += 1
        try:
            fd = await asyncio.to_thread(os.open, self.store.data_path(task_id), os.O_RDONLY)
        except FileNotFoundError:
            self.active -= 1
            raise NotFound(f"task {task_id[:12]} is no longer cached") from None
        try:
            for piece in wanted:
                for start in range(0, piece.size, READ_SPAN):
                    # One thread hop per span, not per chunk; memory per call stays at one span.
                    size = min(READ_SPAN, piece.size - start)
                    data = await asyncio.to_thread(os.pread, fd, size, piece.offset + start)
                    if len(data) != size:
                        raise NotFound(f"piece {piece.number} of task {task_id[:12]} is no longer cached")
                    view = memoryview(data)
                    for done in range(0, size, CHUNK_SIZE):
                        chunk = bytes(view[done : done + CHUNK_SIZE])
                        PEER_BYTES_SERVED.labels("supernode").inc(len(chunk))
                        yield piece.number, start + done, chunk
        finally:
            self.active -= 1
            os.close(fd)
