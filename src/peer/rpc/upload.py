"""PeerService: serves verified pieces to other peers, within upload slots and the upload rate."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc
from dandelion.peer.v1 import peer_pb2, peer_pb2_grpc

from dfcommon.metrics import PEER_BYTES_SERVED
from dfcommon.pieces import CHUNK_SIZE
from peer.storage import Storage
from peer.tokenbucket import TokenBucket

log = logging.getLogger(__name__)

MAX_TASK_ID = 256
MAX_PIECES_PER_CALL = 4096


class UploadServicer(peer_pb2_grpc.PeerServiceServicer):
    """Streams held pieces as <= 1 MiB chunks; RESOURCE_EXHAUSTED when all upload slots are busy."""

    def __init__(self, storage: Storage, slots: int, bucket: TokenBucket) -> None:
        self.storage = storage
        self.slots = slots
        self.bucket = bucket
        self.busy = 0
        self.bytes_sent = 0

    async def DownloadPieces(
        self, request: peer_pb2.DownloadPiecesRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> AsyncIterator[peer_pb2.DownloadPiecesResponse]:
        """Send the requested pieces in order."""
        if not request.task_id or len(request.task_id) > MAX_TASK_ID:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "task_id is empty or too long")
        if len(request.piece_numbers) > MAX_PIECES_PER_CALL:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"more than {MAX_PIECES_PER_CALL} pieces asked")
        store = self.storage.get(request.task_id)
        if store is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"task {request.task_id[:80]} is not held here")
            return
        if self.busy >= self.slots:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"all {self.slots} upload slots are busy")
        self.busy += 1
        store.pins += 1
        try:
            for number in request.piece_numbers:
                if store.closed or not store.has(number):
                    await context.abort(grpc.StatusCode.NOT_FOUND, f"piece {number} is not held here")
                offset, size = store.span(number)
                sent = 0
                pending = asyncio.ensure_future(asyncio.to_thread(store.read, offset, min(CHUNK_SIZE, size)))
                while sent < size:
                    data = await pending
                    nxt = sent + len(data)
                    if len(data) == 0:
                        await context.abort(grpc.StatusCode.DATA_LOSS, f"piece {number} is unreadable")
                    if nxt < size:  # read ahead while this chunk goes out
                        pending = asyncio.ensure_future(
                            asyncio.to_thread(store.read, offset + nxt, min(CHUNK_SIZE, size - nxt))
                        )
                    await self.bucket.acquire(len(data))
                    yield peer_pb2.DownloadPiecesResponse(piece_number=number, offset=sent, data=data)
                    sent = nxt
                    self.bytes_sent += len(data)
                    PEER_BYTES_SERVED.labels("dfdaemon").inc(len(data))
        finally:
            self.busy -= 1
            store.pins -= 1
