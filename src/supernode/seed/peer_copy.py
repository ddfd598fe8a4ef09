"""The seed's copy of content that a peer fetched from its origin: PeerService.StreamTask into the seed's file.

The peer is not trusted: the seed cuts and hashes the bytes itself (a piece digest for each piece, sha256 of the
whole), and the content counts only once the whole matches the task's digest, as with an origin fetch.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from concurrent.futures import Executor
from typing import Any, cast

import grpc
from dandelion.peer.v1 import peer_pb2

from dfcommon.address import PeerAddress
from dfcommon.channels import channel
from dfcommon.errors import Unavailable
from dfcommon.piecedigest import DEFAULT_ALGORITHM, digest_of
from dfcommon.pieces import piece_size_for
from dfcommon.tls import TlsConfig
from dfcommon.wire import decode_with_payload
from supernode.resource.piece import PieceMeta
from supernode.seed.origin import FetchResult, PieceSink

log = logging.getLogger(__name__)

METHOD = "/dandelion.peer.v1.PeerService/StreamTask"
DATA_FIELD = 3  # StreamTaskResponse.data
READ_TIMEOUT_S = 60.0  # a source silent this long mid-content fails the copy (its origin may be slow)

StreamChunk = tuple[peer_pb2.StreamTaskResponse, memoryview]
EOF = cast(object, grpc.aio.EOF)  # type: ignore[attr-defined]  # end of a stream's messages


def _chunk(raw: bytes) -> StreamChunk:
    return decode_with_payload(raw, peer_pb2.StreamTaskResponse, DATA_FIELD)


class SourceFailed(Unavailable):
    """The copy from the source peer failed (unreachable, cut, or content that does not match the digest)."""


class HandedOver(Exception):
    """The source peer stopped its origin fetch for the seed to take it over (StreamTask take_over)."""


class PeerCopier:
    """Copies content from source peers (over mutual TLS when tls is given); pieces are written (and hashed) by
    the writer threads."""

    def __init__(self, writers: Executor, read_timeout: float = READ_TIMEOUT_S, tls: TlsConfig | None = None) -> None:
        self.writers = writers
        self.read_timeout = read_timeout
        self.tls = tls

    async def copy(
        self,
        source: PeerAddress,
        task_id: str,
        digest: str,
        fd: int,
        piece_base: int,
        sink: PieceSink,
        piece_digest: str = DEFAULT_ALGORITHM,
        take_over: bool = False,
    ) -> FetchResult:
        """Copy the task's content from source into fd and check it against digest ("sha256:<hex>"); with
        take_over, a source still early in its origin fetch hands that fetch over instead (HandedOver).

        Raises SourceFailed or HandedOver (nothing was written then). sink hears of each piece once it is on
        disk: nothing of it is verified before this returns (the caller offers the pieces only then).
        """
        with _Copy(self.writers, fd, sink, piece_digest) as job:
            async with channel(source.target, tls=self.tls) as chan:
                call = chan.unary_stream(
                    METHOD,
                    request_serializer=peer_pb2.StreamTaskRequest.SerializeToString,
                    response_deserializer=_chunk,
                )(
                    peer_pb2.StreamTaskRequest(
                        task_id=task_id, requester_peer_id=f"seed-{task_id[:16]}", take_over=take_over
                    )
                )
                try:
                    await job.receive(call, piece_base, self.read_timeout)
                except grpc.aio.AioRpcError as err:
                    raise SourceFailed(f"peer {source.peer_id[:12]}: {err.code().name} {err.details()}") from None
                except TimeoutError:
                    raise SourceFailed(
                        f"peer {source.peer_id[:12]} sent nothing for {self.read_timeout:.0f}s"
                    ) from None
                finally:
                    call.cancel()
            result = await job.finish()
        expected = digest.split(":", 1)[1] if digest.startswith("sha256:") else ""
        if expected and result.sha256 != expected:
            raise SourceFailed(
                f"content copied from peer {source.peer_id[:12]} has sha256:{result.sha256}, want {digest}"
            )
        if not expected:
            raise SourceFailed(f"cannot check a copy from a peer against {digest[:80]!r}")
        return result


class _Copy:
    """One copy: chunks are gathered into piece buffers on the event loop; each full piece is written and hashed
    (the whole content too, in order) by a writer thread while the next one fills."""

    def __init__(self, writers: Executor, fd: int, sink: PieceSink, piece_digest: str) -> None:
        self.writers = writers
        self.fd = fd
        self.sink = sink
        self.piece_digest = piece_digest
        self.whole = hashlib.sha256()
        self.pieces: list[PieceMeta] = []
        self.length = -1
        self.piece_size = 0
        self.received = 0
        self.source_piece_size = 0
        self._writing: asyncio.Future[PieceMeta] | None = None

    def __enter__(self) -> _Copy:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._writing is not None and not self._writing.done():
            self._writing.cancel()

    async def receive(self, call: grpc.aio.UnaryStreamCall[Any, Any], piece_base: int, idle: float) -> None:
        """Read the stream to its end; each message must come within idle seconds of the last."""
        buffer = bytearray()
        loop = asyncio.get_running_loop()
        while True:
            async with asyncio.timeout(idle):
                message = await call.read()
            if message is EOF:
                break
            head, data = cast(StreamChunk, message)
            if head.handed_over and self.received == 0 and not data:
                raise HandedOver()
            self._check(head, len(data), piece_base)
            buffer += data
            self.received += len(data)
            while len(buffer) >= self.piece_size:
                await self._write(loop, bytes(buffer[: self.piece_size]))
                del buffer[: self.piece_size]
        if self.piece_size == 0:
            raise SourceFailed("the source sent no content")
        if self.length >= 0 and self.received != self.length:
            raise SourceFailed(f"the source sent {self.received} of {self.length} bytes")
        if buffer:
            await self._write(loop, bytes(buffer))

    def _check(self, head: peer_pb2.StreamTaskResponse, size: int, piece_base: int) -> None:
        if head.offset != self.received:
            raise SourceFailed(f"the source sent offset {head.offset}, want {self.received}")
        if self.piece_size == 0:
            self.source_piece_size = head.piece_size
            self.length = head.content_length if head.content_length >= 0 else -1
            self.piece_size = piece_size_for(self.length, piece_base) if self.length >= 0 else piece_base
            self.sink.answered(self.length, self.piece_size)
        elif self.length >= 0 and head.content_length != self.length:  # unknown may become known: that is news
            raise SourceFailed(f"the source changed the content length from {self.length} to {head.content_length}")
        if self.length >= 0 and self.received + size > self.length:
            raise SourceFailed(f"the source sent more than {self.length} bytes")

    async def _write(self, loop: asyncio.AbstractEventLoop, data: bytes) -> None:
        await self._written()  # pieces are written and hashed one after another, in order
        number = len(self.pieces)
        self._writing = loop.run_in_executor(self.writers, self._write_piece, number, number * self.piece_size, data)

    async def _written(self) -> None:
        """Wait for the piece being written, then record it (and tell the sink)."""
        if self._writing is not None:
            piece = await self._writing
            self._writing = None
            self.pieces.append(piece)
            self.sink.piece_written(piece)

    def _write_piece(self, number: int, offset: int, data: bytes) -> PieceMeta:
        """In a writer thread: write, hash (the whole content and the piece)."""
        written = 0
        view = memoryview(data)
        while written < len(data):
            written += os.pwrite(self.fd, view[written:], offset + written)
        self.whole.update(data)
        return PieceMeta(number, offset, len(data), digest_of(self.piece_digest, (data,)))

    async def finish(self) -> FetchResult:
        await self._written()
        return FetchResult(self.received, self.piece_size, self.pieces, self.whole.hexdigest(), self.source_piece_size)
