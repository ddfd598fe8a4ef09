"""DaemonService: dfget's local endpoint; streams content in order with progress."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import grpc
from dandelion.peer.v1 import peer_pb2

from dfcommon.content import ContentRequest
from dfcommon.errors import DandelionError
from peer.rpc.wire import encode_with_payload
from peer.storage import Storage
from peer.transferer import SwarmTransferer

log = logging.getLogger(__name__)

MAX_HEADERS = 64
MAX_HEADER_BYTES = 16 << 10
DATA_FIELD = 5  # DownloadResponse.data


def content_request(message: peer_pb2.DownloadRequest) -> ContentRequest:
    """The request a DownloadRequest stands for."""
    meta = message.url_meta
    return ContentRequest(
        url=meta.url,
        headers=dict(meta.headers),
        digest=meta.digest,
        filtered_query_params=tuple(meta.filtered_query_params),
        byte_range=meta.range,
    )


class DaemonServicer:
    """Downloads through the host's transferer and lists its cache.

    Download's messages leave already serialized (see peer.rpc.wire): register with add_daemon_service.
    """

    def __init__(self, transferer: SwarmTransferer, storage: Storage) -> None:
        self.transferer = transferer
        self.storage = storage

    async def Download(
        self, request: peer_pb2.DownloadRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> AsyncIterator[bytes]:
        """Stream the content: a progress message first, then data chunks, then done."""
        headers = request.url_meta.headers
        if len(headers) > MAX_HEADERS or sum(len(k) + len(v) for k, v in headers.items()) > MAX_HEADER_BYTES:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "too many or too large headers")
        try:
            stream = await self.transferer.open(
                content_request(request),
                no_back_source=True if request.no_back_source else None,
                rate_limit=request.rate_limit,
            )
        except DandelionError as exc:
            await context.abort(exc.code, str(exc))
            return
        yield peer_pb2.DownloadResponse(
            task_id=stream.task_id, content_length=stream.content_length, completed_length=stream.completed_length()
        ).SerializeToString()
        offset = 0
        try:
            async for chunk in stream.chunks():
                head = peer_pb2.DownloadResponse(
                    task_id=stream.task_id,
                    content_length=stream.content_length,
                    completed_length=stream.completed_length(),
                    offset=offset,
                )
                yield encode_with_payload(head, DATA_FIELD, chunk)
                offset += len(chunk)
        except DandelionError as exc:
            await context.abort(exc.code, str(exc))
        finally:
            await stream.aclose()
        yield peer_pb2.DownloadResponse(
            task_id=stream.task_id, content_length=offset, completed_length=offset, offset=offset, done=True
        ).SerializeToString()

    async def ListCache(
        self, request: peer_pb2.ListCacheRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> peer_pb2.ListCacheResponse:
        """Every cached content."""
        now = time.time()
        return peer_pb2.ListCacheResponse(
            entries=[
                peer_pb2.CacheEntry(
                    task_id=s.task_id,
                    url=s.meta.url,
                    content_length=s.meta.content_length,
                    complete=s.complete,
                    idle_seconds=max(0.0, now - s.meta.last_used),
                )
                for s in self.storage.entries()
            ]
        )


def add_daemon_service(servicer: DaemonServicer, server: grpc.aio.Server) -> None:
    """Serve DaemonService from servicer; Download's messages go out as the bytes it yields."""
    handlers = {
        "Download": grpc.unary_stream_rpc_method_handler(
            servicer.Download, request_deserializer=peer_pb2.DownloadRequest.FromString, response_serializer=None
        ),
        "ListCache": grpc.unary_unary_rpc_method_handler(
            servicer.ListCache,
            request_deserializer=peer_pb2.ListCacheRequest.FromString,
            response_serializer=peer_pb2.ListCacheResponse.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("dandelion.peer.v1.DaemonService", handlers),)
    )
