"""Blob bodies: swarm chunks streamed to the client in order, sha256-checked before the last byte leaves."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator

from starlette.responses import StreamingResponse
from starlette.types import Send

from dfcommon.errors import DigestMismatch, Unavailable
from mirror.transfer import BlobStream

log = logging.getLogger(__name__)

# Chunks this big are hashed in a worker thread while the previous chunk is being sent
# (hashlib releases the GIL); smaller ones cost less to hash inline than to hand over.
THREADED_HASH_MIN = 256 * 1024


async def verified_chunks(stream: BlobStream, digest: str, count: int, verify: bool) -> AsyncIterator[bytes]:
    """count bytes of stream; with verify (the whole blob), the sha256 must equal digest.

    With verify, each chunk is held back until the next one has been hashed, and the last one until the
    whole digest matched: a mismatch raises DigestMismatch, which cuts the connection before the
    client has every byte, so it never accepts bad content.
    """
    hasher = hashlib.sha256() if verify else None
    remaining = count
    held: bytes | None = None
    try:
        async for chunk in stream.chunks():
            if len(chunk) > remaining:
                chunk = chunk[:remaining]
            remaining -= len(chunk)
            if hasher is None:
                yield chunk
            else:
                if len(chunk) >= THREADED_HASH_MIN:
                    hashing = asyncio.ensure_future(asyncio.to_thread(hasher.update, chunk))
                    try:
                        if held is not None:
                            yield held
                    finally:
                        await hashing
                else:
                    hasher.update(chunk)
                    if held is not None:
                        yield held
                held = chunk
            if remaining == 0:
                break
        if remaining > 0:
            raise Unavailable(f"blob {digest} ended {remaining} bytes early")
        if hasher is not None:
            actual = f"sha256:{hasher.hexdigest()}"
            if actual != digest:
                log.error("blob digest mismatch: want %s, got %s; cutting the response", digest, actual)
                raise DigestMismatch(f"blob content has digest {actual}, want {digest}")
            if held is not None:
                yield held
    finally:
        await stream.aclose()


class BlobResponse(StreamingResponse):
    """A StreamingResponse that always closes its body (and so the swarm stream), even on disconnect."""

    def __init__(self, body: AsyncIterator[bytes], status_code: int, headers: dict[str, str]) -> None:
        super().__init__(body, status_code=status_code, headers=headers)
        self._body = body

    async def stream_response(self, send: Send) -> None:
        """Send the body; close it whatever happens."""
        try:
            await super().stream_response(send)
        finally:
            aclose = getattr(self._body, "aclose", None)
            if aclose is not None:
                await aclose()
