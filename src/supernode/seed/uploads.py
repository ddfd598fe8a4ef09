"""Serving the seed's pieces: bounded upload slots, 1 MiB chunks read with os.pread."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import aclosing
from pathlib import Path

from dandelion.peer.v1 import peer_pb2

from dfcommon.errors import NotFound
from dfcommon.metrics import PEER_BYTES_SERVED
from dfcommon.pieces import CHUNK_SIZE
from dfcommon.slots import SlotPool
from dfcommon.wire import encode_with_payload
from supernode.resource.piece import PieceMeta
from supernode.seed.store import SeedStore

DATA_FIELD = 3  # DownloadPiecesResponse.data
POOL = "seed_uploads"

__all__ = ["SeedUploads", "SharedFd"]


class SharedFd:
    """A read-only file descriptor shared with worker threads: closed once its owner let go of it and no worker
    still reads it (cancelling a worker's future does not stop its thread, so the owner cannot close it at once)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._users = 1  # the owner
        self._lock = threading.Lock()

    @classmethod
    async def open(cls, path: Path) -> SharedFd:
        """Open path in a worker thread; a cancelled caller leaves no descriptor behind."""
        opening = asyncio.get_running_loop().run_in_executor(None, os.open, path, os.O_RDONLY)
        try:
            return cls(await asyncio.shield(opening))
        except asyncio.CancelledError:
            opening.add_done_callback(_close_opened)
            raise

    def pread(self, size: int, offset: int) -> bytes:
        """os.pread, or EOFError once the descriptor is closed (worker thread)."""
        with self._lock:
            if self._users == 0:
                raise EOFError
            self._users += 1
        try:
            return os.pread(self._fd, size, offset)
        finally:
            self._release()

    def close(self) -> None:
        """The owner is done: close now, or when the last worker returns."""
        self._release()

    def _release(self) -> None:
        with self._lock:
            self._users -= 1
            last = self._users == 0
        if last:
            os.close(self._fd)


def _close_opened(opening: asyncio.Future[int]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        os.close(opening.result())


def _frame(fd: SharedFd, number: int, piece_offset: int, start: int, size: int) -> bytes:
    """Read one chunk and frame it as a DownloadPiecesResponse (one copy of the payload; worker thread)."""
    data = fd.pread(size, piece_offset + start)
    if len(data) != size:
        raise EOFError
    return encode_with_payload(peer_pb2.DownloadPiecesResponse(piece_number=number, offset=start), DATA_FIELD, data)


class SeedUploads:
    """Streams verified pieces of the seed's content files."""

    def __init__(self, store: SeedStore, slots: int, verified: Callable[[str], Mapping[int, PieceMeta] | None]) -> None:
        self.store = store
        self.pool = SlotPool(POOL, slots, f"seed upload slots busy ({slots})")
        self._verified = verified

    @property
    def active(self) -> int:
        """Upload slots in use."""
        return self.pool.busy

    async def messages(self, task_id: str, numbers: Sequence[int]) -> AsyncGenerator[bytes, None]:
        """Serialized DownloadPiecesResponse chunks (<= 1 MiB) of each requested piece, in order.

        The slot and the file are held from the first chunk to the generator's end, however it ends (finished,
        failed, cancelled, closed): nothing in the release path awaits.
        """
        pieces = self._verified(task_id)
        if pieces is None:
            raise NotFound(f"unknown task {task_id[:80]}")
        wanted = []
        for number in numbers:
            if number not in pieces:
                raise NotFound(f"piece {number} of task {task_id[:12]} is not held by the seed")
            wanted.append(pieces[number])
        with self.pool.hold():
            try:
                fd = await SharedFd.open(self.store.data_path(task_id))
            except FileNotFoundError:
                raise NotFound(f"task {task_id[:12]} is no longer cached") from None
            try:
                async with aclosing(self._chunks(fd, task_id, wanted)) as chunks:
                    async for wire in chunks:
                        yield wire
            finally:
                fd.close()

    async def _chunks(self, fd: SharedFd, task_id: str, wanted: Sequence[PieceMeta]) -> AsyncGenerator[bytes, None]:
        counter = PEER_BYTES_SERVED.labels("supernode")
        spans = [
            (p.number, p.offset, start, min(CHUNK_SIZE, p.size - start))
            for p in wanted
            for start in range(0, p.size, CHUNK_SIZE)
        ]
        ahead: asyncio.Future[bytes] | None = None
        try:
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
            if ahead is not None:
                ahead.cancel()  # its thread may still run: SharedFd keeps the descriptor open until it returns
                ahead.add_done_callback(_consume)


def _consume(future: asyncio.Future[bytes]) -> None:
    """Retrieve a dropped read-ahead's outcome (no 'exception was never retrieved' warning)."""
    if not future.cancelled():
        future.exception()
