"""Serving the seed's pieces: bounded upload slots, 1 MiB chunks read with os.pread."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Sequence

import grpc
from dandelion.peer.v1 import peer_pb2

from dfcommon.errors import DandelionError, NotFound
from dfcommon.metrics import PEER_BYTES_SERVED
from dfcommon.pieces import CHUNK_SIZE
from dfcommon.wire import encode_with_payload
from supernode.resource.piece import PieceMeta
from supernode.seed.store import SeedStore

DATA_FIELD = 3  # DownloadPiecesResponse.data


def _frame(fd: int, number: int, piece_offset: int, start: int, size: int) -> bytes:
    """Read one chunk and frame it as a DownloadPiecesResponse (one copy of the payload; worker thread)."""
    data = os.pread(fd, size, piece_offset + start)
    if len(data) != size:
        raise EOFError
    return encode_with_payload(peer_pb2.DownloadPiecesResponse(piece_number=number, offset=start), DATA_FIELD, data)


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

    async def messages(self, task_id: str, numbers: Sequence[int]) -> AsyncIterator[bytes]:
        """Serialized DownloadPiecesResponse chunks (<= 1 MiB) of each requested piece, in order."""
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
        counter = PEER_BYTES_SERVED.labels("supernode")
        reading: asyncio.Future[bytes] | None = None
        ahead: asyncio.Future[bytes] | None = None
        try:
            spans = [
                (p.number, p.offset, start, min(CHUNK_SIZE, p.size - start))
                for p in wanted
                for start in range(0, p.size, CHUNK_SIZE)
            ]
            for index, (number, offset, start, size) in enumerate(spans):
                reading = ahead or asyncio.ensure_future(asyncio.to_thread(_frame, fd, number, offset, start, size))
                ahead = None
                if index + 1 < len(spans):  # read and frame the next chunk while this one goes out
                    ahead = asyncio.ensure_future(asyncio.to_thread(_frame, fd, *spans[index + 1]))
                try:
                    wire = await reading
                except EOFError:
                    raise NotFound(f"piece {number} of task {task_id[:12]} is no longer cached") from None
                counter.inc(size)
                yield wire
        finally:
            # Worker threads may still be reading fd (cancelling a future does not stop its thread).
            await asyncio.gather(*(f for f in (reading, ahead) if f is not None), return_exceptions=True)
            self.active -= 1
            os.close(fd)
