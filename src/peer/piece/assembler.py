"""Collects one piece's chunks while hashing them in a worker thread, then stores it if it verifies."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import replace

from dfcommon.errors import DigestMismatch
from peer.piece.model import PieceSpec
from peer.storage.task_store import TaskStore


class PieceAssembler:
    """Accepts chunks in order; hashing of chunk k overlaps the arrival of chunk k+1 (sha256 drops the GIL)."""

    def __init__(self, piece: PieceSpec) -> None:
        self.piece = piece
        self.received = 0
        self._chunks: list[bytes | memoryview] = []
        self._hasher = hashlib.sha256()
        self._hashing: asyncio.Future[None] | None = None

    @property
    def full(self) -> bool:
        """True when every byte of the piece arrived."""
        return self.received >= self.piece.size

    async def add(self, offset: int, data: bytes | memoryview) -> None:
        """Take the next chunk; ValueError when it is out of place or too long."""
        if offset != self.received or self.received + len(data) > self.piece.size:
            raise ValueError(
                f"piece {self.piece.number}: chunk at {offset}+{len(data)} does not follow {self.received}"
            )
        if self._hashing is not None:
            await self._hashing
        self._chunks.append(data)
        self.received += len(data)
        self._hashing = asyncio.get_running_loop().run_in_executor(None, self._hasher.update, data)

    def shrink_to_received(self) -> None:
        """Make the piece end at what arrived (the last piece of content whose length was unknown)."""
        self.piece = replace(self.piece, size=self.received)

    async def store(self, store: TaskStore) -> None:
        """Verify the whole piece and write it; DigestMismatch (nothing written) when it does not match."""
        if self._hashing is not None:
            await self._hashing
        if not self.full:
            raise ValueError(f"piece {self.piece.number} is incomplete")
        actual = self._hasher.hexdigest()
        if self.piece.sha256 and actual != self.piece.sha256.lower():
            raise DigestMismatch(f"piece {self.piece.number} sha256 {actual} != {self.piece.sha256}")
        chunks, self._chunks = self._chunks, []
        await asyncio.to_thread(store.write_piece, self.piece.number, chunks)
