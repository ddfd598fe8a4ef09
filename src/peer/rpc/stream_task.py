"""PeerService.StreamTask: a task's whole content in order, as this host downloads it (for the seed's copy)."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing

import grpc
from dandelion.peer.v1 import peer_pb2

from dfcommon.errors import DandelionError
from dfcommon.grpcserver import add_peer_method
from dfcommon.metrics import PEER_BYTES_SERVED
from dfcommon.slots import Busy, SlotPool
from dfcommon.wire import encode_with_payload
from peer.rpc.upload import MAX_TASK_ID
from peer.tokenbucket import TokenBucket
from peer.transferer import SwarmTransferer

log = logging.getLogger(__name__)

DATA_FIELD = 3  # StreamTaskResponse.data
# Streams served at once. Only supernodes' seeds call StreamTask (one stream per task they copy), and outside the
# upload slots, which belong to the swarm's DownloadPieces: a copy must not wait behind them.
MAX_STREAMS = 16
POOL = "peer_stream_task"


class StreamTaskServicer:
    """Streams what the transferer downloads or holds, within the host's upload rate.

    Chunks leave already serialized (see dfcommon.wire): register with add_stream_task_service.
    """

    def __init__(self, bucket: TokenBucket) -> None:
        self.transferer: SwarmTransferer | None = None  # set once the peer's context exists
        self.bucket = bucket
        self.pool = SlotPool(POOL, MAX_STREAMS, f"{MAX_STREAMS} StreamTask calls run already")

    @property
    def streams(self) -> int:
        """StreamTask calls running."""
        return self.pool.busy

    async def StreamTask(
        self, request: peer_pb2.StreamTaskRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> AsyncIterator[bytes]:
        """Send the content from its start, each chunk once it is verified here."""
        if not request.task_id or len(request.task_id) > MAX_TASK_ID:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "task_id is empty or too long")
        if self.transferer is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "this peer is still starting")
            return
        try:
            with self.pool.hold():
                async with aclosing(self._stream(self.transferer, request, context)) as messages:
                    async for message in messages:
                        yield message
        except Busy as err:
            await context.abort(err.code, str(err))

    async def _stream(
        self,
        transferer: SwarmTransferer,
        request: peer_pb2.StreamTaskRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> AsyncGenerator[bytes, None]:
        try:
            stream = await transferer.follow(request.task_id)
        except DandelionError as err:
            await context.abort(err.code, str(err))
            return
        if stream is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"task {request.task_id[:80]} is not held here")
            return
        store = stream.conductor.store
        piece_size = store.meta.piece_size if store is not None else 0
        if request.take_over and await stream.conductor.hand_over():
            await stream.aclose()
            yield peer_pb2.StreamTaskResponse(
                content_length=stream.content_length, piece_size=piece_size, handed_over=True
            ).SerializeToString()
            return
        log.info("streaming task=%s to peer=%s", request.task_id[:12], request.requester_peer_id[:12])
        offset = 0
        try:
            async for chunk in stream.chunks():
                head = peer_pb2.StreamTaskResponse(
                    content_length=stream.content_length, offset=offset, piece_size=piece_size
                )
                await self.bucket.acquire(len(chunk))
                yield encode_with_payload(head, DATA_FIELD, chunk)
                offset += len(chunk)
                PEER_BYTES_SERVED.labels("dfdaemon").inc(len(chunk))
        except DandelionError as err:
            await context.abort(err.code, str(err))
        finally:
            await stream.aclose()


def add_stream_task_service(servicer: StreamTaskServicer, server: grpc.aio.Server) -> None:
    """Serve PeerService.StreamTask from servicer; its chunks go out as the bytes it yields."""
    add_peer_method(server, "StreamTask", servicer.StreamTask, peer_pb2.StreamTaskRequest.FromString)
