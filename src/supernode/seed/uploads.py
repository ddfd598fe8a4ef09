"""Serving the seed's pieces: bounded upload slots, 1 MiB chunks read with os.pread."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Sequence

import grpc

from dfcommon.errors import DandelionError, NotFound
from dfcommon.pieces import CHUNK_SIZE
from supernode.resource.piece import PieceMeta
from supernode.seed.store import SeedStore


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
                done = 0
                while done < piece.size:
                    size = min(CHUNK_SIZE, piece.size - done)
                    data = await asyncio.to_thread(os.pread, fd, size, piece.offset + done)
                    if len(data) != size:
                        raise NotFound(f"piece {piece.number} of task {task_id[:12]} is no longer cached")
                    yield piece.number, done, data
                    done += size
        finally:
            self.active -= 1
            os.close(fd)
