"""Collects one piece's chunks, then verifies and stores it in one worker-thread call."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from dfcommon import piecedigest
from dfcommon.errors import DigestMismatch
from peer.piece.model import PieceSpec
from peer.storage.task_store import TaskStore


class PieceAssembler:
    """Accepts chunks in order; store() hashes and writes off the event loop (blake3 and sha256 drop the GIL),
    so the next piece keeps arriving meanwhile."""

    def __init__(self, piece: PieceSpec) -> None:
        self.piece = piece
        self.received = 0
        self._chunks: list[bytes | memoryview] = []

    @property
    def full(self) -> bool:
        """True when every byte of the piece arrived."""
        return self.received >= self.piece.size

    def add(self, offset: int, data: bytes | memoryview) -> None:
        """Take the next chunk; ValueError when it is out of place or too long."""
        if offset != self.received or self.received + len(data) > self.piece.size:
            raise ValueError(
                f"piece {self.piece.number}: chunk at {offset}+{len(data)} does not follow {self.received}"
            )
        self._chunks.append(data)
        self.received += len(data)

    def shrink_to_received(self) -> None:
        """Make the piece end at what arrived (the last piece of content whose length was unknown)."""
        self.piece = replace(self.piece, size=self.received)

    def verify_and_write(self, store: TaskStore, algorithm: str = "") -> str:
        """Blocking: check the digest, then write; DigestMismatch (nothing written) when it does not match. Returns
        the piece's digest: the one it was checked against, else one computed with algorithm (default BLAKE3)."""
        if not self.full:
            raise ValueError(f"piece {self.piece.number} is incomplete")
        chunks, self._chunks = self._chunks, []
        if self.piece.digest:
            parsed = piecedigest.parse(self.piece.digest)
            if parsed is None:
                raise DigestMismatch(f"piece {self.piece.number} has an unusable digest {self.piece.digest[:80]!r}")
            digest = piecedigest.digest_of(parsed[0], chunks)
            if digest != f"{parsed[0]}:{parsed[1]}":
                raise DigestMismatch(f"piece {self.piece.number} is {digest}, want {self.piece.digest}")
        else:
            digest = piecedigest.digest_of(algorithm or piecedigest.DEFAULT_ALGORITHM, chunks)
        store.write_piece(self.piece.number, chunks, digest)
        return digest

    async def store(self, store: TaskStore, algorithm: str = "") -> str:
        """verify_and_write in a worker thread."""
        return await asyncio.to_thread(self.verify_and_write, store, algorithm)
