"""DaemonService: dfget's local endpoint; streams content in order with progress."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing

import grpc
from dandelion.peer.v1 import peer_pb2

from dfcommon.content import ContentRequest
from dfcommon.errors import DAEMON_ANSWERED, DandelionError
from dfcommon.inspection import InspectionPolicy
from dfcommon.slots import SlotPool
from dfcommon.urlmeta import from_url_meta
from dfcommon.wire import encode_with_payload
from peer.access import AccessCheck, check_same_content
from peer.storage import Storage
from peer.transferer import SwarmTransferer, TaskStream

log = logging.getLogger(__name__)

MAX_HEADERS = 64
MAX_HEADER_BYTES = 16 << 10
DATA_FIELD = 5  # DownloadResponse.data
POOL = "daemon_downloads"
MAX_DOWNLOADS = 1024  # dfget calls streaming at once; each holds a cache entry open


def content_request(message: peer_pb2.DownloadRequest) -> ContentRequest:
    """The request a DownloadRequest stands for."""
    return from_url_meta(message.url_meta)


class DaemonServicer:
    """Downloads through the host's transferer and lists its cache.

    Download's messages leave already serialized (see dfcommon.wire): register with add_daemon_service.
    """

    def __init__(
        self,
        transferer: SwarmTransferer,
        storage: Storage,
        inspection: InspectionPolicy | None = None,
        access: AccessCheck | None = None,
    ) -> None:
        """access: asks the origin whether each caller may read its URL before anything is handed to it (None: the
        check is left to whoever built this servicer; every dfdaemon builds one)."""
        self.transferer = transferer
        self.access = access
        self.storage = storage
        # The endpoint is never TLS: a unix socket's file mode guards it; on TCP, loopback callers only by default.
        self.inspection = inspection if inspection is not None else InspectionPolicy()
        self.pool = SlotPool(POOL, MAX_DOWNLOADS, f"{MAX_DOWNLOADS} downloads run on this daemon already")

    async def Download(
        self, request: peer_pb2.DownloadRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> AsyncIterator[bytes]:
        """Stream the content (a progress message, data chunks, done), or with local_copy its cache file and
        how much of it is verified."""
        headers = request.url_meta.headers
        if len(headers) > MAX_HEADERS or sum(len(k) + len(v) for k, v in headers.items()) > MAX_HEADER_BYTES:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "too many or too large headers")
        try:
            with self.pool.hold():
                wanted = content_request(request)
                self.transferer.task_id_of(wanted)  # a malformed request is refused before anyone is asked
                stated = await self.access.authorise(wanted) if self.access is not None else -1
                stream = await self.transferer.open(
                    wanted,
                    no_back_source=True if request.no_back_source else None,
                    rate_limit=request.rate_limit,
                    stop_when_abandoned=True,
                )
                try:
                    check_same_content(wanted, stated, stream.content_length)
                    messages = self._local_copy(stream) if request.local_copy else self._streamed(stream)
                    async with aclosing(messages):
                        async for message in messages:
                            yield message
                finally:
                    await stream.aclose()  # awaits nothing: a cancellation cannot cut it short
        except DandelionError as exc:
            await context.abort(exc.code, str(exc), trailing_metadata=((DAEMON_ANSWERED, "1"),))

    async def _streamed(self, stream: TaskStream) -> AsyncGenerator[bytes, None]:
        """A progress message, the content as data chunks in order, then done."""
        yield peer_pb2.DownloadResponse(
            task_id=stream.task_id, content_length=stream.content_length, completed_length=stream.completed_length()
        ).SerializeToString()
        offset = 0
        async for chunk in stream.chunks():
            head = peer_pb2.DownloadResponse(
                task_id=stream.task_id,
                content_length=stream.content_length,
                completed_length=stream.completed_length(),
                offset=offset,
            )
            yield encode_with_payload(head, DATA_FIELD, chunk)
            offset += len(chunk)
        yield peer_pb2.DownloadResponse(
            task_id=stream.task_id, content_length=offset, completed_length=offset, offset=offset, done=True
        ).SerializeToString()

    async def _local_copy(self, stream: TaskStream) -> AsyncGenerator[bytes, None]:
        """The cache file's identity, then how much of it is verified as that grows, then done."""
        path, device, inode = stream.local_file()
        yield peer_pb2.DownloadResponse(
            task_id=stream.task_id,
            content_length=stream.content_length,
            completed_length=stream.completed_length(),
            local_file=peer_pb2.LocalFile(path=path, device=device, inode=inode),
        ).SerializeToString()
        readable = 0
        async for readable in stream.readable_lengths():
            yield peer_pb2.DownloadResponse(
                task_id=stream.task_id,
                content_length=stream.content_length,
                completed_length=stream.completed_length(),
                readable_length=readable,
            ).SerializeToString()
        yield peer_pb2.DownloadResponse(
            task_id=stream.task_id,
            content_length=readable,
            completed_length=readable,
            readable_length=readable,
            done=True,
        ).SerializeToString()

    async def ListCache(
        self, request: peer_pb2.ListCacheRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> peer_pb2.ListCacheResponse:
        """Every cached content."""
        reason = self.inspection.refusal(context)
        if reason is not None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, reason)
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
