"""The swarm side of mirror.transfer: one conductor per task, any number of in-order readers."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable

import grpc
from dandelion.scheduler.v1 import scheduler_pb2

from dfcommon.byterange import parse_byte_range
from dfcommon.content import ContentRequest
from dfcommon.digest import parse_digest
from dfcommon.errors import DaemonStopping, DandelionError, InvalidArgument
from dfcommon.identity import request_task_id, validate_url
from dfcommon.pieces import CHUNK_SIZE
from peer.conductor import Conductor
from peer.context import PeerContext
from peer.tokenbucket import TokenBucket

log = logging.getLogger(__name__)

REPORT_STEP = 16 << 20  # readable_lengths grows by at most this much per value
# A download only dfget wanted stops this long after its last reader left (dfget reconnects within it when it
# switches from the cache file to a stream).
ABANDON_GRACE_S = 2.0
MAX_PREFETCHES = 64  # the mirror's layer prefetches waiting at once on this daemon


def _past_stopping(conductor: Conductor) -> bool:
    """True when leaving would lose the download, not spare it: someone else wants it, it ended, or its content
    verified. A dfget that got the last byte leaves at once, while the cache still flushes the data to disk (seconds
    for a large file on a slow disk); stopping then would throw the verified copy away and take this host out of the
    swarm as a parent."""
    return conductor.kept or conductor.verified or conductor.finished.is_set()


class TaskStream:
    """Verified bytes of one task from an offset, in order, as pieces arrive (a mirror.transfer.BlobStream)."""

    def __init__(
        self,
        conductor: Conductor,
        offset: int,
        rate_limit: int = 0,
        on_close: Callable[[Conductor], None] | None = None,
    ) -> None:
        self.conductor = conductor
        conductor.readers += 1
        self._on_close = on_close
        self.offset = offset
        self._bucket = TokenBucket(rate_limit)
        self._store = conductor.store
        if self._store is not None:
            self._store.pins += 1
        self._closed = False

    @property
    def task_id(self) -> str:
        """The task id."""
        return self.conductor.task_id

    @property
    def content_length(self) -> int:
        """Total content length (-1 when the origin sent none and the download is not finished)."""
        return self.conductor.content_length

    def completed_length(self) -> int:
        """Bytes of the content verified so far."""
        return self.conductor.completed_length()

    @property
    def verifies_digest(self) -> bool:
        """True when the request named a digest: the last chunk is released only once the whole content matched
        it (see _readable), or the content came from the cache where it matched when it was downloaded."""
        return bool(self.conductor.request.digest)

    def downloaded(self) -> bool:
        """True once the whole content is verified in the cache (a mirror.transfer.BlobStream)."""
        return self.conductor.verified

    def _check(self) -> None:
        if self.conductor.error is not None:
            raise self.conductor.error

    def _readable(self, position: int) -> int:
        """Bytes readable at position now (>0), 0 at the verified end, -1 when the caller must wait."""
        conductor = self.conductor
        store = conductor.store
        if store is None:
            raise DandelionError("content vanished from the cache", grpc.StatusCode.ABORTED)
        length = store.meta.content_length
        if length >= 0 and position >= length:
            return 0 if conductor.verified else -1
        number = position // store.meta.piece_size
        if not store.has(number):
            return -1
        offset, size = store.span(number)
        take = min(CHUNK_SIZE, offset + size - position)
        if length >= 0 and position + take >= length and not conductor.verified:
            return -1  # the last chunk goes out only once the whole content verified
        return take

    async def chunks(self) -> AsyncIterator[bytes]:
        """Yield <= 1 MiB chunks; the next chunk is read from disk while this one is consumed."""
        position = self.offset
        ahead: tuple[int, asyncio.Future[bytes]] | None = None
        try:
            while True:
                self._check()
                waiting = self.conductor.progress()
                take = self._readable(position)
                if take == 0:
                    return
                if take < 0:
                    await waiting.wait()
                    continue
                store = self.conductor.store
                assert store is not None
                if ahead is not None and ahead[0] == position:
                    reading = ahead[1]
                else:
                    reading = asyncio.ensure_future(asyncio.to_thread(store.read, position, take))
                ahead = None
                following = position + take
                if (more := self._readable(following)) > 0:
                    ahead = (following, asyncio.ensure_future(asyncio.to_thread(store.read, following, more)))
                try:
                    data = await reading
                except OSError:
                    self._check()
                    raise
                if len(data) != take:
                    self._check()
                    raise DandelionError("short read from the cache", grpc.StatusCode.DATA_LOSS)
                await self._bucket.acquire(take)
                position = following
                yield data
        finally:
            if ahead is not None:
                ahead[1].cancel()
            await self.aclose()

    def local_file(self) -> tuple[str, int, int]:
        """(absolute path, st_dev, st_ino) of the cache file holding the content, for a reader on this host."""
        store = self.conductor.store
        if store is None:
            raise DandelionError("content vanished from the cache", grpc.StatusCode.ABORTED)
        return store.data_identity()

    async def readable_lengths(self) -> AsyncIterator[int]:
        """Yield how far the verified, in-order content from offset reaches, each time it grows (by at most
        REPORT_STEP); the last value is the content's end, once the whole content verified. Reads nothing."""
        position = self.offset
        try:
            while True:
                self._check()
                waiting = self.conductor.progress()
                start = position
                while position - start < REPORT_STEP and (take := self._readable(position)) > 0:
                    await self._bucket.acquire(take)
                    position += take
                if position > start:
                    yield position
                    continue
                if self._readable(position) == 0:
                    return
                await waiting.wait()
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Stop reading; the download goes on for the cache."""
        if not self._closed:
            self._closed = True
            self.conductor.readers -= 1
            if self._store is not None:
                self._store.pins -= 1
                self._store.touch()
            if self._on_close is not None:
                self._on_close(self.conductor)


class SwarmTransferer:
    """Starts or joins swarm downloads: concurrent requests for one task share one Conductor."""

    def __init__(self, ctx: PeerContext) -> None:
        self.ctx = ctx
        self._conductors: dict[str, Conductor] = {}
        self._prefetching = 0
        self._stopping: set[asyncio.Task[None]] = set()

    def conductor_for(
        self,
        request: ContentRequest,
        no_back_source: bool | None = None,
        rate_limit: int = 0,
        seeding: bool = False,
        prefer: str = "",
    ) -> Conductor:
        """The running conductor of the request's task, started on first use (seeding: for a seed peer's order,
        which offers a cached copy to the swarm; prefer: the supernode that ordered it)."""
        tid = self.task_id_of(request)
        conductor = self._conductors.get(tid)
        if conductor is None or conductor.error is not None:
            back_source_off = self.ctx.no_back_source if no_back_source is None else no_back_source
            conductor = Conductor(self.ctx, request, tid, back_source_off, rate_limit, announce_cached=seeding)
            conductor.prefer = prefer
            self._conductors[tid] = conductor
            task = conductor.start()
            task.add_done_callback(functools.partial(self._forget, conductor))
        return conductor

    def _forget(self, conductor: Conductor, _task: object = None) -> None:
        if self._conductors.get(conductor.task_id) is conductor:
            del self._conductors[conductor.task_id]

    async def open(
        self,
        request: ContentRequest,
        offset: int = 0,
        no_back_source: bool | None = None,
        rate_limit: int = 0,
        stop_when_abandoned: bool = False,
    ) -> TaskStream:
        """Register or join the task and return its stream from offset (a mirror.transfer.BlobTransferer).

        stop_when_abandoned (dfget): the download stops once its last reader is gone, unless a caller without it
        (the mirror, a prefetch, the seed) joined; otherwise it goes on for the cache."""
        if offset < 0:
            raise InvalidArgument(f"negative offset {offset}")
        conductor = self.conductor_for(request, no_back_source, rate_limit)
        if not stop_when_abandoned:
            conductor.kept = True
        reader_gone = self._reader_gone if stop_when_abandoned else None
        try:
            await conductor.wait_ready()
        except BaseException:
            if reader_gone is not None and conductor.readers == 0:
                reader_gone(conductor)
            raise
        stream = TaskStream(conductor, offset, rate_limit, reader_gone)
        length = conductor.content_length
        if length >= 0 and offset > length:
            await stream.aclose()
            raise DandelionError(f"offset {offset} is past the end ({length})", grpc.StatusCode.OUT_OF_RANGE)
        return stream

    def _reader_gone(self, conductor: Conductor) -> None:
        """A dfget reader left: stop the download after ABANDON_GRACE_S if nobody else wants it by then."""
        if conductor.readers == 0 and not _past_stopping(conductor):
            asyncio.get_running_loop().call_later(ABANDON_GRACE_S, self._stop_if_abandoned, conductor)

    def _stop_if_abandoned(self, conductor: Conductor) -> None:
        if conductor.readers or _past_stopping(conductor):
            return
        log.info("task=%s: every dfget waiting for it left; stopping the download", conductor.task_id)
        task = asyncio.create_task(self._stop(conductor))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _stop(self, conductor: Conductor) -> None:
        await conductor.cancel()
        supernode = conductor.supernode
        if supernode is not None and conductor.peer_id:
            try:
                await supernode.stub().LeaveTask(scheduler_pb2.LeaveTaskRequest(peer_id=conductor.peer_id), timeout=5)
            except grpc.aio.AioRpcError as exc:
                log.info("LeaveTask for stopped task=%s failed: %s", conductor.task_id, exc.code().name)

    def holds(self, request: ContentRequest) -> bool:
        """True when the content is complete in this host's cache (a mirror.transfer.BlobTransferer)."""
        try:
            tid = self.task_id_of(request)
        except DandelionError:
            return False
        return self.ctx.storage.get_complete(tid) is not None

    @staticmethod
    def task_id_of(request: ContentRequest) -> str:
        """The request's task id, once its URL, digest and range are valid (InvalidArgument otherwise)."""
        validate_url(request.url)
        if request.digest:
            parse_digest(request.digest)
        if request.byte_range:
            parse_byte_range(request.byte_range)
        return request_task_id(request)

    async def prefetch(self, request: ContentRequest) -> bool:
        """Download the content into this host's cache in the background, as the mirror's first client request
        for it would, and wait until it is done (a mirror.transfer.BlobTransferer); a download of it running here
        is waited for instead. False when the content is cached here already or MAX_PREFETCHES run."""
        if self.holds(request):
            return False
        tid = self.task_id_of(request)
        conductor = self._conductors.get(tid)
        if conductor is None:
            if self._prefetching >= MAX_PREFETCHES:
                return False
            conductor = self.conductor_for(request)
        conductor.kept = True
        self._prefetching += 1
        try:
            await conductor.finished.wait()
        finally:
            self._prefetching -= 1
        return True

    async def seed(self, request: ContentRequest, supernode: str = "") -> None:
        """A seed peer's order (from the supernode at that address): download the content into this host's cache
        through the swarm, where the supernode has this peer read the origin for the others (a copy cached here
        already is offered to them instead); a download of it running here is waited for. Raises the download's
        error."""
        conductor = self.conductor_for(request, no_back_source=False, seeding=True, prefer=supernode)
        conductor.kept = True
        await conductor.finished.wait()
        if conductor.error is not None:
            raise conductor.error

    async def close(self) -> None:
        """Stop every running download."""
        conductors = list(self._conductors.values())
        await asyncio.gather(*(c.cancel(DaemonStopping()) for c in conductors), return_exceptions=True)
        self._conductors.clear()
