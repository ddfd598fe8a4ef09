"""PeerService: serves verified pieces to other peers holding a supernode's grant, within upload slots and the
upload rate."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from contextlib import aclosing, contextmanager

import grpc
from dandelion.peer.v1 import peer_pb2

from dfcommon.grants import GrantKeys, GrantRefused
from dfcommon.grpcserver import add_download_pieces
from dfcommon.metrics import PEER_BYTES_SERVED
from dfcommon.pieces import CHUNK_SIZE
from dfcommon.ratelog import RateLimitedLog
from dfcommon.slots import Busy, SlotPool
from dfcommon.wire import encode_with_payload
from peer.storage import Storage, TaskStore
from peer.tokenbucket import TokenBucket

log = logging.getLogger(__name__)
refusals = RateLimitedLog(log)  # anyone can cause a refusal: at most one line per interval, with a count

MAX_TASK_ID = 256
MAX_PIECES_PER_CALL = 4096
DATA_FIELD = 3  # DownloadPiecesResponse.data
METHOD = "/dandelion.peer.v1.PeerService/DownloadPieces"
POOL = "peer_uploads"


def read_chunk(store: TaskStore, number: int, piece_offset: int, sent: int, size: int) -> tuple[int, bytes]:
    """(payload length, wire form) of the chunk at `sent` in a piece: pread and framing in one worker-thread call."""
    data = store.read(piece_offset + sent, min(CHUNK_SIZE, size - sent))
    if not data:
        return 0, b""
    head = peer_pb2.DownloadPiecesResponse(piece_number=number, offset=sent)
    return len(data), encode_with_payload(head, DATA_FIELD, data)


@contextmanager
def pinned(store: TaskStore) -> Iterator[TaskStore]:
    """The store, kept from the cache GC for the duration of the block."""
    store.pins += 1
    try:
        yield store
    finally:
        store.pins -= 1


class UploadServicer:
    """Streams held pieces as <= 1 MiB chunks; PERMISSION_DENIED without a valid grant (unless grants is None: the
    check is off), RESOURCE_EXHAUSTED when all upload slots are busy.

    Chunks leave already serialized (see dfcommon.wire): register with add_upload_service, not the generated helper.
    """

    def __init__(
        self,
        storage: Storage,
        slots: int,
        bucket: TokenBucket,
        component: str = "dfdaemon",
        *,
        grants: GrantKeys | None,
    ) -> None:
        self.storage = storage
        self.grants = grants
        self.component = component  # the metrics' component label: the process it runs in
        self.pool = SlotPool(POOL, slots, f"all {slots} upload slots are busy")
        self.bucket = bucket
        self.bytes_sent = 0

    @property
    def busy(self) -> int:
        """Upload slots in use."""
        return self.pool.busy

    async def DownloadPieces(
        self, request: peer_pb2.DownloadPiecesRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> AsyncIterator[bytes]:
        """Send the requested pieces in order (each chunk read and framed in a worker thread)."""
        if not request.task_id or len(request.task_id) > MAX_TASK_ID:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "task_id is empty or too long")
        if len(request.piece_numbers) > MAX_PIECES_PER_CALL:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"more than {MAX_PIECES_PER_CALL} pieces asked")
        if self.grants is not None:  # first: a caller without a grant does not learn whether the task is here
            try:
                self.grants.check(request.grant, request.task_id, request.requester_host_id)
            except GrantRefused as err:
                refusals.log(logging.INFO, "grant", f"refused DownloadPieces for task={request.task_id[:12]}: {err}")
                await context.abort(err.code, str(err))
        store = self.storage.get(request.task_id)
        if store is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"task {request.task_id[:80]} is not held here")
            return
        try:
            with self.pool.hold(), pinned(store):
                async with aclosing(self._send(store, request.piece_numbers, context)) as chunks:
                    async for wire in chunks:
                        yield wire
        except Busy as err:
            await context.abort(err.code, str(err))

    async def _send(
        self, store: TaskStore, numbers: Sequence[int], context: grpc.aio.ServicerContext[object, object]
    ) -> AsyncGenerator[bytes, None]:
        """The chunks of each piece, read ahead by one chunk, within the upload rate."""
        for number in numbers:
            if store.closed or not store.has(number):
                await context.abort(grpc.StatusCode.NOT_FOUND, f"piece {number} is not held here")
            offset, size = store.span(number)
            sent = 0
            pending = asyncio.ensure_future(asyncio.to_thread(read_chunk, store, number, offset, sent, size))
            try:
                while sent < size:
                    length, wire = await pending
                    if length == 0:
                        await context.abort(grpc.StatusCode.DATA_LOSS, f"piece {number} is unreadable")
                    nxt = sent + length
                    if nxt < size:  # read ahead while this chunk goes out
                        pending = asyncio.ensure_future(asyncio.to_thread(read_chunk, store, number, offset, nxt, size))
                    await self.bucket.acquire(length)
                    # Counted as it is handed to gRPC: a child that has all it wanted may cancel the stream before
                    # this generator resumes after its last chunk, which would then never be counted.
                    self.bytes_sent += length
                    PEER_BYTES_SERVED.labels(self.component).inc(length)
                    yield wire
                    sent = nxt
            finally:
                pending.cancel()  # a read-ahead nobody will send
                pending.add_done_callback(_consume)


def _consume(future: asyncio.Future[tuple[int, bytes]]) -> None:
    """Retrieve a dropped read's outcome (no 'exception was never retrieved' warning)."""
    if not future.cancelled():
        future.exception()


def add_upload_service(servicer: UploadServicer, server: grpc.aio.Server) -> None:
    """Serve PeerService.DownloadPieces from servicer; its chunks go out as the bytes it yields."""
    add_download_pieces(servicer.DownloadPieces, server)
