"""One task's download: local cache, swarm (RegisterTask + SyncPieces), or back-to-source, then verification."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from dandelion.common.v1 import common_pb2
from dandelion.scheduler.v1 import scheduler_pb2

from dfcommon import piecedigest
from dfcommon.content import ContentRequest
from dfcommon.digest import parse_digest
from dfcommon.errors import DandelionError, DigestMismatch, OriginError, Unavailable
from dfcommon.identity import display_url
from dfcommon.metrics import ORIGIN_BYTES, PEER_BYTES_RECEIVED, PIECES, TASK_DURATION
from dfcommon.pieces import DEFAULT_PIECE_SIZE, piece_size_for
from peer.context import PeerContext
from peer.origin import open_origin
from peer.piece import failures
from peer.piece.assembler import PieceAssembler
from peer.piece.fetcher import fetch_group
from peer.piece.health import SwarmHealth, local_fault
from peer.piece.model import Parent, PieceOutcome, PieceSpec
from peer.piece.queue import FetchQueue
from peer.storage import TaskStore
from peer.storage.space import disk_error
from peer.tokenbucket import TokenBucket, acquire_all

if TYPE_CHECKING:
    from dandelion.scheduler.v1.scheduler_pb2_grpc import SchedulerServiceAsyncStub

log = logging.getLogger(__name__)

BATCH_SIZE = 8  # piece results per SyncPieces message
BATCH_DELAY = 0.02  # seconds a result may wait for company
SEED_VERDICT_WAIT = 5.0  # seconds to wait, once every piece is held, for the seed's digest check (hashing meanwhile)
INTERNAL_ERROR = "internal error in the dfdaemon (its log has the details)"
# Times one download registers its task again after the supernode forgot this host's peer (the host registered
# again after a failed heartbeat, or was dropped): each time it reports the pieces it holds and goes on.
MAX_REJOINS = 3


@dataclass
class _Event:
    # "message", "end", "outcome", "slot"; and from this peer's own read of the origin for the swarm: "answer" (the
    # origin answered: the store exists), "offered" (number, digest of a piece stored), "read" (the read ended)
    kind: str
    value: Any = None


class SwarmGaveUp(Exception):
    """The swarm cannot finish the download; the reason says why (back-to-source follows)."""


class _Forgotten(Exception):
    """The piece stream ended because the supernode no longer knows this peer (the host registered again, was
    dropped, or moved to another supernode): register the task again."""


def url_meta(request: ContentRequest) -> common_pb2.UrlMeta:
    """The wire form of a content request."""
    return common_pb2.UrlMeta(
        url=request.url,
        headers=request.headers,
        digest=request.digest,
        filtered_query_params=list(request.filtered_query_params),
        range=request.byte_range,
    )


def _piece_digest(piece: common_pb2.PieceInfo) -> str:
    """The piece's digest as "<algorithm>:<hex>" ("" when it has none we can check: the content is then hashed
    here); a seed that only fills the deprecated sha256 field counts as a sha256 digest."""
    text = piece.digest or (f"sha256:{piece.sha256}" if piece.sha256 else "")
    if not text:
        return ""
    parsed = piecedigest.parse(text)
    if parsed is None:
        log.warning("piece %d has a digest this peer cannot check: %.80r", piece.number, text)
        return ""
    return f"{parsed[0]}:{parsed[1]}"


def missing_runs(missing: list[int]) -> list[tuple[int, int]]:
    """Contiguous runs (first, last) of sorted piece numbers."""
    runs: list[tuple[int, int]] = []
    for number in missing:
        if runs and runs[-1][1] == number - 1:
            runs[-1] = (runs[-1][0], number)
        else:
            runs.append((number, number))
    return runs


class Conductor:
    """Downloads one task once, for any number of readers; pieces become readable as they verify."""

    def __init__(
        self,
        ctx: PeerContext,
        request: ContentRequest,
        task_id: str,
        no_back_source: bool,
        rate_limit: int = 0,
    ) -> None:
        self.ctx = ctx
        self.request = request
        self.task_id = task_id
        self.no_back_source = no_back_source
        self.buckets = [ctx.download_bucket] + ([TokenBucket(rate_limit)] if rate_limit else [])
        self.display_url = display_url(request.url, request.filtered_query_params)
        self.store: TaskStore | None = None
        self.error: DandelionError | None = None
        self.verified = False
        self.finished = asyncio.Event()
        self.bytes_from_peers = 0
        self.bytes_from_origin = 0
        self.from_cache = False
        self.peer_id = ""  # this host's peer in the task's swarm, once registered
        self._host_id = ""  # the host id that peer was registered under
        self._reported = False
        self._ready = asyncio.Event()
        self._progress = asyncio.Event()
        self._hashes: dict[int, str] = {}
        # The seed checked the whole content against request.digest (TaskInfo: SUCCEEDED with that digest), seen on
        # one unbroken swarm stream; with every piece verified against the seed's digest, that verifies the content.
        self._seed_vouches = False
        self._unhashed_assignment = False  # some piece was assigned without a digest: hash the content ourselves
        self._swarm_only = False  # every piece so far came through the swarm (the eager digest pass waits)
        self._digest_task: asyncio.Task[str] | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = time.monotonic()
        # This peer's read of the origin for the swarm (the supernode asked: BackToSource.offer_pieces), the
        # algorithm of the piece digests it reports, and where its news goes (the running stream's events).
        self._reading: asyncio.Task[None] | None = None
        self._offer_digest = ""
        self._answered = False  # the origin's answer (with a length) went out: pieces may be offered
        self._notify: Callable[[_Event], None] | None = None
        self._health = SwarmHealth()  # parents' cool-downs and progress of the current piece stream
        self.readers = 0  # open TaskStreams
        self.kept = False  # someone wants the content in the cache whether or not a reader stays (mirror, seed)

    # ----- what readers see
    @property
    def content_length(self) -> int:
        """Content length, -1 while unknown."""
        return self.store.meta.content_length if self.store is not None else -1

    def completed_length(self) -> int:
        """Bytes verified so far."""
        return self.store.completed_length() if self.store is not None else 0

    def progress(self) -> asyncio.Event:
        """An event set at the next change (piece stored, finished, failed)."""
        return self._progress

    def _pulse(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    async def wait_ready(self) -> None:
        """Wait until the content's metadata is known; raises the download's error."""
        await self._ready.wait()
        if self.error is not None and self.store is None:
            raise self.error

    def start(self) -> asyncio.Task[None]:
        """Run the download in the background."""
        self._task = asyncio.create_task(self._run(), name=f"conductor-{self.task_id[:12]}")
        return self._task

    async def cancel(self) -> None:
        """Stop the download."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # ----- the download
    async def _run(self) -> None:
        try:
            await self._download()
        except DandelionError as exc:
            self._fail(exc)
            await self._report(self.peer_id, False, str(exc))
        except asyncio.CancelledError:
            self._fail(Unavailable("download cancelled"))
            raise
        except Exception:
            # A bug, not a condition a person can act on: the traceback goes to this log, the reader gets one line.
            # (The cache disk's OSErrors arrive as CacheDiskError from peer.storage, naming the directory.)
            log.exception("task=%s failed", self.task_id)
            self._fail(DandelionError(INTERNAL_ERROR))
        finally:
            for task in (self._digest_task, self._reading):
                if task is not None and not task.done():
                    task.cancel()
            if self.store is not None:
                self.store.pins -= 1
            self._ready.set()
            self.finished.set()
            self._pulse()

    def _fail(self, exc: DandelionError) -> None:
        self.error = exc
        log.warning("task=%s url=%s failed: %s", self.task_id, self.display_url, exc)
        if self.store is not None and not self.store.complete:
            self.store.pins -= 1
            self.ctx.storage.remove(self.task_id)
            self.store = None
        self._ready.set()
        self._pulse()

    def _use_store(self, store: TaskStore) -> None:
        store.pins += 1
        self.store = store
        if self.request.digest and not store.complete and not self._swarm_only:
            self._start_digest()
        self._ready.set()
        self._pulse()

    def _start_digest(self) -> None:
        """Hash the content in order as it arrives (from disk), unless that already runs."""
        if self._digest_task is None and self.store is not None:
            self._digest_task = asyncio.create_task(self._follow_digest(self.store))

    def _create_store(self, content_length: int, piece_size: int) -> TaskStore:
        store = self.ctx.storage.create(self.task_id, self.display_url, self.request.digest, content_length, piece_size)
        self._use_store(store)
        return store

    async def _download(self) -> None:
        cached = self.ctx.storage.get_complete(self.task_id)
        if cached is not None:
            cached.touch()
            self.from_cache = True
            self.verified = True
            self._use_store(cached)
            log.info("task=%s served from the local cache", self.task_id)
            return
        if (partial := self.ctx.storage.get_partial(self.task_id)) is not None:
            self._use_store(partial)  # the verified pieces of an interrupted download: only the rest is fetched
        reason = ""
        peer_id = ""
        if self.ctx.scheduler is not None:
            self._swarm_only = bool(self.request.digest)
            peer_id, reason = await self._swarm()
        else:
            reason = "no supernode configured"
        if self._reading is not None:
            # This peer's read of the origin for the swarm goes on without the swarm (or ended): its end or error
            # is the download's.
            self._notify = None
            await self._reading
        if self.store is None or not self.store.all_held():
            if self.no_back_source:
                raise Unavailable(
                    f"cannot download {self.display_url} from the swarm ({reason}) and back-to-source is off"
                )
            log.info("task=%s going back to source: %s", self.task_id, reason)
            if self.store is not None and not self.bytes_from_origin:  # what it holds came from peers
                self.bytes_from_peers = self.store.completed_length()
            await self._back_to_source()
        await self._complete(peer_id)

    async def _swarm(self) -> tuple[str, str]:
        """Register and sync; (peer id, why the swarm could not finish or "")."""
        reason = ""
        peer_id = ""
        try:
            for rejoin in range(MAX_REJOINS + 1):
                peer_id = await self._register()
                try:
                    await self._sync(peer_id)
                    break
                except _Forgotten as exc:
                    if rejoin == MAX_REJOINS:
                        raise SwarmGaveUp(str(exc)) from None
                    log.info("task=%s: %s; registering the task again", self.task_id[:12], exc)
                    self._seed_vouches = False  # the new stream says it again
        except SwarmGaveUp as exc:
            reason = str(exc)
        except DandelionError as exc:
            if exc.code != grpc.StatusCode.UNAVAILABLE:
                raise
            reason = str(exc)
        if reason or (self.store is not None and not self.store.all_held()):
            self._distrust_seed()
        return peer_id, reason

    async def _register(self) -> str:
        assert self.ctx.scheduler is not None
        meta = url_meta(self.request)

        def register(stub: SchedulerServiceAsyncStub, host_id: str) -> Awaitable[scheduler_pb2.RegisterTaskResponse]:
            self._host_id = host_id
            return stub.RegisterTask(  # type: ignore[no-any-return]
                scheduler_pb2.RegisterTaskRequest(host_id=host_id, url_meta=meta), timeout=self.ctx.register_timeout
            )

        response: scheduler_pb2.RegisterTaskResponse = await self.ctx.scheduler.call(register)
        self._apply_task(response.task)
        self.peer_id = str(response.peer_id)
        return self.peer_id

    def _apply_task(self, task: scheduler_pb2.TaskInfo) -> None:
        if task.content_length < 0 or task.piece_size <= 0 or self._reading is not None:
            pass
        elif self.store is None:
            self._create_store(task.content_length, task.piece_size)
        else:  # a partial task kept from before a restart, which the swarm now cuts otherwise, loses its pieces
            self.store.reshape(task.content_length, task.piece_size)
        if task.state == common_pb2.TASK_STATE_FAILED:
            self._distrust_seed()
        elif task.state == common_pb2.TASK_STATE_SUCCEEDED and self._swarm_only and task.digest:
            try:
                self._seed_vouches = parse_digest(task.digest) == parse_digest(self.request.digest)
            except DandelionError:
                self._seed_vouches = False

    def _distrust_seed(self) -> None:
        """From now on the content's digest is checked here: the swarm path was left or the seed failed."""
        self._seed_vouches = False
        self._swarm_only = False
        if self.request.digest and self.store is not None and not self.store.complete:
            self._start_digest()

    def _seed_verified_content(self) -> bool:
        """True when the content is verified without hashing it again here: the seed vouched for the digest and
        every piece was checked against the digest the seed published for it (so none came from elsewhere)."""
        store = self.store
        if not (self._seed_vouches and self._swarm_only) or self._unhashed_assignment or store is None:
            return False
        count = store.meta.piece_count
        return store.meta.content_length >= 0 and all(number in self._hashes for number in range(count))

    async def _sync(self, peer_id: str) -> None:
        """Run the SyncPieces stream until every piece is held; SwarmGaveUp otherwise."""
        assert self.ctx.scheduler is not None
        if self.store is not None and self.store.all_held():
            return
        events: asyncio.Queue[_Event] = asyncio.Queue()
        outgoing: asyncio.Queue[scheduler_pb2.SyncPiecesRequest | None] = asyncio.Queue()
        outgoing.put_nowait(self._hello(peer_id))

        async def requests() -> AsyncIterator[scheduler_pb2.SyncPiecesRequest]:
            while (message := await outgoing.get()) is not None:
                yield message

        call = self.ctx.scheduler.stub().SyncPieces(requests())

        async def read() -> None:
            try:
                while isinstance(message := await call.read(), scheduler_pb2.SyncPiecesResponse):
                    events.put_nowait(_Event("message", message))
                events.put_nowait(_Event("end", ("the supernode ended the piece stream", False)))
            except grpc.aio.AioRpcError as exc:
                forgotten = exc.code() == grpc.StatusCode.NOT_FOUND
                events.put_nowait(_Event("end", (f"piece stream failed: {exc.code().name} {exc.details()}", forgotten)))
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
                # The call itself was cancelled, not this reader: its channel was closed.
                events.put_nowait(_Event("end", ("the piece stream's channel was closed", True)))

        queue = FetchQueue(self.ctx.max_streams, self.ctx.group_size)
        fetches: set[asyncio.Task[None]] = set()
        health = self._health = SwarmHealth()

        def stream_done(task: asyncio.Task[None]) -> None:
            fetches.discard(task)
            queue.release()
            events.put_nowait(_Event("slot"))

        def dispatch() -> None:
            while (group := queue.next_group(lambda p: health.ready(p.peer_id))) is not None:
                parent, pieces = group
                task = asyncio.create_task(self._fetch(peer_id, parent, pieces, events))
                fetches.add(task)
                task.add_done_callback(stream_done)

        results: list[scheduler_pb2.PieceResult] = []
        reader = asyncio.create_task(read())
        offering = False  # the supernode asked this peer to read the origin for the swarm, on this stream

        def flush() -> None:
            if results:
                outgoing.put_nowait(scheduler_pb2.SyncPiecesRequest(peer_id=peer_id, results=list(results)))
                results.clear()

        def own_read(event: _Event) -> bool:
            """News of this peer's own read of the origin; False when that read failed (the download ends)."""
            if event.kind == "answer":
                flush()
                outgoing.put_nowait(scheduler_pb2.SyncPiecesRequest(peer_id=peer_id, origin=event.value))
            elif event.kind == "offered":
                number, digest = event.value
                results.append(scheduler_pb2.PieceResult(piece_number=number, success=True, digest=digest))
                flush()  # at once: other peers wait for it
            elif event.kind == "read":
                done: asyncio.Task[None] = event.value
                return done.cancelled() or done.exception() is None
            return True

        self._notify = events.put_nowait
        try:
            while self.store is None or not self.store.all_held():
                if self.ctx.scheduler.host_id != self._host_id:  # registered again, maybe with another supernode
                    raise _Forgotten("this host registered with the supernode again")
                reading = self._reading is not None and not self._reading.done()
                if not reading and (reason := health.give_up_reason(self.ctx.stall_timeout)):
                    raise SwarmGaveUp(reason)
                try:
                    async with asyncio.timeout(BATCH_DELAY if results else min(1.0, health.next_ready_in() or 1.0)):
                        event = await events.get()
                except TimeoutError:
                    flush()
                    dispatch()  # a parent's cool-down may have ended
                    continue
                if event.kind == "slot":
                    dispatch()
                    continue
                if event.kind == "end":
                    why, forgotten = event.value
                    if forgotten or self.ctx.scheduler.host_id != self._host_id:
                        raise _Forgotten(why)
                    raise SwarmGaveUp(why)
                if event.kind == "outcome":
                    results.append(self._on_outcome(event.value))
                    if len(results) >= BATCH_SIZE:
                        flush()
                    continue
                if event.kind in ("answer", "offered", "read"):
                    if not own_read(event):
                        break  # the read's error is the download's (_download awaits it)
                    continue
                message: scheduler_pb2.SyncPiecesResponse = event.value
                which = message.WhichOneof("event")
                if which == "task":
                    health.news()
                    if message.task.state == common_pb2.TASK_STATE_FAILED:
                        raise SwarmGaveUp(f"the seed failed: {message.task.error or 'no reason given'}")
                    self._apply_task(message.task)
                elif which == "back_to_source":
                    order = message.back_to_source
                    if not order.offer_pieces:
                        raise SwarmGaveUp(f"supernode sent back-to-source: {order.reason}")
                    if self.no_back_source:
                        raise SwarmGaveUp(f"the supernode asked this peer to read the origin ({order.reason})")
                    offering = True
                    queue.clear()
                    for task in list(fetches):
                        task.cancel()
                    self._read_for_swarm(order.piece_digest)
                elif which == "assignments":
                    if self._reading is not None and not offering:  # another peer reads the origin now
                        await self._stop_reading()
                    if log.isEnabledFor(logging.DEBUG):
                        log.debug(
                            "task=%s assigned %s",
                            self.task_id[:12],
                            [(a.piece.number, a.parent.peer_id[:8]) for a in message.assignments.assignments],
                        )
                    for parent, piece in self._wanted(message.assignments):
                        queue.add(parent, piece)
                    dispatch()
            if fetches:  # the last pieces' outcomes are reported just after their bits are set
                await asyncio.wait(set(fetches), timeout=5.0)
            if self._reading is not None:  # so is the last piece this peer read from the origin
                await asyncio.wait({self._reading})
            while not events.empty():  # outcomes (and news) that landed with the last piece
                event = events.get_nowait()
                if event.kind in ("answer", "offered", "read"):
                    own_read(event)
                else:
                    self._after_last_piece(event, results)
            flush()
            await self._await_seed_verdict(events, results)
        finally:
            self._notify = None
            outgoing.put_nowait(None)
            for task in list(fetches):
                task.cancel()
            await asyncio.gather(*fetches, return_exceptions=True)
            await asyncio.wait({reader}, timeout=1.0)  # its own end or failure was an event already
            call.cancel()
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    def _hello(self, peer_id: str) -> scheduler_pb2.SyncPiecesRequest:
        """A stream's first message: the pieces held (with their digests, and the origin's answer, once the
        length is known: for the supernode to offer them when this peer reads the origin for the swarm)."""
        store = self.store
        request = scheduler_pb2.SyncPiecesRequest(peer_id=peer_id, window=self.ctx.window)
        if store is None:
            return request
        known = store.meta.content_length >= 0
        for number in range(store.meta.piece_count):
            if store.has(number):
                digest = (store.piece_digest(number) or self._hashes.get(number, "")) if known else ""
                request.results.append(scheduler_pb2.PieceResult(piece_number=number, success=True, digest=digest))
        if self._reading is not None and known:
            request.origin.CopyFrom(self._origin_answer(store))
        return request

    @staticmethod
    def _origin_answer(store: TaskStore) -> scheduler_pb2.OriginAnswer:
        return scheduler_pb2.OriginAnswer(content_length=store.meta.content_length, piece_size=store.meta.piece_size)

    def _read_for_swarm(self, algorithm: str) -> None:
        """Read the origin for the swarm (what this peer lacks, or all of it), reporting each piece with its digest
        as soon as it is stored (see _sync); the content is hashed here as a whole, as after any origin read."""
        self._offer_digest = algorithm if algorithm in piecedigest.ALGORITHMS else piecedigest.DEFAULT_ALGORITHM
        if self._reading is not None:
            return  # it reads already (a new stream after registering again)
        log.info("task=%s reading the origin for the swarm", self.task_id[:12])
        self._distrust_seed()
        self.bytes_from_peers = self.store.completed_length() if self.store is not None else 0
        self._reading = asyncio.create_task(self._back_to_source(), name=f"read-{self.task_id[:12]}")
        self._reading.add_done_callback(lambda done: self._emit(_Event("read", done)))

    async def _stop_reading(self) -> None:
        """Another peer reads the origin for the swarm now: stop this peer's read (what it stored stays)."""
        reading, self._reading = self._reading, None
        if reading is not None:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
            log.info("task=%s another peer reads the origin now: this peer's read stopped", self.task_id[:12])

    def _emit(self, event: _Event) -> None:
        if event.kind == "answer":
            self._answered = True
        if self._notify is not None:
            self._notify(event)

    def _after_last_piece(self, event: _Event, results: list[scheduler_pb2.PieceResult]) -> bool:
        """Handle an event that arrives once every piece is held; True when the stream ended."""
        if event.kind == "outcome":
            results.append(self._on_outcome(event.value))
        elif event.kind == "end":
            return True
        elif event.kind == "message":
            message: scheduler_pb2.SyncPiecesResponse = event.value
            if message.WhichOneof("event") == "task":
                self._apply_task(message.task)
            elif message.WhichOneof("event") == "back_to_source":
                self._distrust_seed()
        return False

    async def _await_seed_verdict(
        self, events: asyncio.Queue[_Event], results: list[scheduler_pb2.PieceResult]
    ) -> None:
        """Every piece is held: wait for the seed's word on the whole digest (it follows the seed's last piece
        within milliseconds), while hashing the content here in case it does not come."""
        if not self._swarm_only or self._seed_vouches:
            return
        self._start_digest()
        digest_task = self._digest_task
        assert digest_task is not None
        deadline = time.monotonic() + SEED_VERDICT_WAIT
        while not self._seed_vouches and self._swarm_only and not digest_task.done():
            getting = asyncio.ensure_future(events.get())
            left = deadline - time.monotonic()
            done, _ = await asyncio.wait({getting, digest_task}, timeout=max(0.0, left))
            if getting not in done:
                getting.cancel()
                return
            if self._after_last_piece(getting.result(), results) or left <= 0:
                return

    def _wanted(self, assignments: scheduler_pb2.PieceAssignments) -> list[tuple[Parent, PieceSpec]]:
        store = self.store
        wanted: list[tuple[Parent, PieceSpec]] = []
        for item in assignments.assignments:
            piece = PieceSpec(item.piece.number, item.piece.offset, item.piece.size, _piece_digest(item.piece))
            if piece.digest:
                known = self._hashes.setdefault(piece.number, piece.digest)
                if known != piece.digest:
                    self._unhashed_assignment = True  # two hashes for one piece: trust neither blindly
            else:
                self._unhashed_assignment = True
            if store is None or store.has(piece.number) or piece.number >= store.meta.piece_count:
                continue
            if (piece.offset, piece.size) != store.span(piece.number):
                log.warning("ignoring assignment of piece %d with a wrong span", piece.number)
                continue
            wanted.append((Parent(item.parent.peer_id, item.parent.ip, item.parent.port), piece))
        return wanted

    async def _fetch(
        self,
        peer_id: str,
        parent: Parent,
        pieces: list[PieceSpec],
        events: asyncio.Queue[_Event],
    ) -> None:
        store = self.store
        assert store is not None
        reported: set[int] = set()

        def report(outcome: PieceOutcome) -> None:
            reported.add(outcome.number)
            events.put_nowait(_Event("outcome", outcome))

        try:
            await fetch_group(
                self.ctx.channels.get(parent.target),
                self.task_id,
                peer_id,
                parent,
                pieces,
                store,
                report,
                self.buckets,
            )
        except Exception as exc:
            log.warning("fetch from parent=%s failed: %s", parent.peer_id, exc)
            for piece in pieces:
                if piece.number not in reported:
                    report(PieceOutcome(piece.number, parent.peer_id, False, failures.PARENT_UNAVAILABLE))

    def _on_outcome(self, outcome: PieceOutcome) -> scheduler_pb2.PieceResult:
        self._health.record(outcome)
        local_fault(self.ctx.storage, self.store, outcome, self._health)
        log.debug(
            "task=%s piece %d from %s ok=%s",
            self.task_id[:12],
            outcome.number,
            outcome.parent_peer_id[:8],
            outcome.success,
        )
        PIECES.labels("ok" if outcome.success else "failed").inc()
        if outcome.success:
            self.bytes_from_peers += outcome.size
            PEER_BYTES_RECEIVED.inc(outcome.size)
            self._pulse()
        return scheduler_pb2.PieceResult(
            piece_number=outcome.number,
            parent_peer_id=outcome.parent_peer_id,
            success=outcome.success,
            failure=outcome.failure,  # type: ignore[arg-type]
            duration_ms=outcome.duration_ms,
        )

    # ----- back-to-source
    async def _back_to_source(self) -> None:
        if self.store is None:
            async with open_origin(self.ctx.http, self.request) as response:
                length = response.length
                piece_size = piece_size_for(length) if length >= 0 else DEFAULT_PIECE_SIZE
                store = self._create_store(length, piece_size)
                if length >= 0:
                    self._emit(_Event("answer", self._origin_answer(store)))
                total = await self._cut(store, response.body, 0, None)
            if length < 0:
                store.set_length(total)
                self._emit(_Event("answer", self._origin_answer(store)))
                for number in range(store.meta.piece_count):  # held back until the length was known
                    if number in self._hashes:
                        self._emit(_Event("offered", (number, self._hashes[number])))
            elif total != length:
                raise OriginError(f"origin sent {total} of {length} bytes for {self.display_url}")
            self._pulse()
            return
        store = self.store
        if store.meta.content_length >= 0:
            self._emit(_Event("answer", self._origin_answer(store)))
        for first, last in missing_runs(store.missing()):
            start = store.span(first)[0]
            last_offset, last_size = store.span(last)
            end = last_offset + last_size - 1
            async with open_origin(self.ctx.http, self.request, start, end) as response:
                total = await self._cut(store, response.body, first, last)
            if total != end - start + 1:
                raise OriginError(f"origin sent {total} of {end - start + 1} bytes for {self.display_url}")

    async def _cut(self, store: TaskStore, body: AsyncIterator[memoryview], first: int, last: int | None) -> int:
        """Cut an origin body into pieces first..last (None: to the end), verify where hashes are known, store."""
        number = first
        total = 0

        def assembler_for(n: int) -> PieceAssembler:
            offset, size = store.span(n)
            return PieceAssembler(PieceSpec(n, offset, size, self._hashes.get(n, "")))

        assembler = assembler_for(number)
        async for data in body:
            await acquire_all(self.buckets, len(data))
            view = memoryview(data)
            while view:
                if last is not None and number > last:
                    raise OriginError(f"origin sent more bytes than asked for {self.display_url}")
                take = min(len(view), assembler.piece.size - assembler.received)
                assembler.add(assembler.received, view[:take])
                view = view[take:]
                total += take
                if assembler.full:
                    await self._store_origin_piece(store, assembler)
                    number += 1
                    assembler = assembler_for(number)
        if assembler.received:
            if store.meta.content_length >= 0:
                raise OriginError(f"origin ended early for {self.display_url}")
            assembler.shrink_to_received()
            store.meta.content_length = total + first * store.meta.piece_size
            await self._store_origin_piece(store, assembler)
        return total

    async def _store_origin_piece(self, store: TaskStore, assembler: PieceAssembler) -> None:
        try:
            digest = await assembler.store(store, self._offer_digest)
        except DigestMismatch as exc:
            raise DigestMismatch(f"origin content of {self.display_url} differs from the swarm's: {exc}") from None
        except OSError as exc:
            left = store.meta.content_length - store.completed_length()
            raise disk_error(exc, self.ctx.storage.directory, left if left > 0 else assembler.piece.size) from None
        self.bytes_from_origin += assembler.piece.size
        ORIGIN_BYTES.labels("dfdaemon").inc(assembler.piece.size)
        if digest:
            self._hashes.setdefault(assembler.piece.number, digest)
            if self._answered and self._offer_digest:
                self._emit(_Event("offered", (assembler.piece.number, digest)))
        self._pulse()

    # ----- verification and completion
    async def _follow_digest(self, store: TaskStore) -> str:
        """Hash the content in order as pieces arrive (overlaps the download); returns "algo:hex"."""
        digest = parse_digest(self.request.digest)
        hasher = digest.hasher()
        number = 0
        while True:
            count = store.meta.piece_count
            if store.meta.content_length >= 0 and number >= count:
                return f"{digest.algorithm}:{hasher.hexdigest()}"
            if store.has(number):
                offset, size = store.span(number)

                def update(offset: int = offset, size: int = size) -> None:
                    hasher.update(store.read(offset, size))

                await asyncio.to_thread(update)
                number += 1
            else:
                await self._progress.wait()

    async def _complete(self, peer_id: str) -> None:
        store = self.store
        assert store is not None
        checked = ""
        if self.request.digest and self._seed_verified_content():
            if self._digest_task is not None:
                self._digest_task.cancel()
            checked = ", digest checked by the seed"  # and every piece here against the seed's piece digest
        elif self.request.digest:
            checked = ", digest checked here"
            self._start_digest()
            assert self._digest_task is not None
            self._pulse()
            actual = await self._digest_task
            expected = str(parse_digest(self.request.digest))
            if actual != expected:
                # Every piece from the swarm matched the digest it was given: whoever wrote those digests (the peer
                # that read the origin) is to blame, and the supernode trusts it no more for this content.
                # (A reader says so about its own content: the supernode then drops its digests.)
                blame = bool(self._offer_digest) or (self.bytes_from_peers > 0 and not self._unhashed_assignment)
                await self._report(peer_id, False, f"digest mismatch: got {actual}", blame)
                raise DigestMismatch(f"content of {self.display_url} has digest {actual}, want {expected}")
        # The disk refuses the metadata (CacheDiskError) before readers get the last byte; the flush of the data,
        # which may take a while, runs after.
        await asyncio.to_thread(store.prepare_complete)
        self.verified = True
        self._pulse()
        await asyncio.to_thread(store.mark_complete)
        elapsed = time.monotonic() - self._started
        log.info(
            "task=%s done: %d bytes, %d from peers, %d from origin, %.2fs%s",
            self.task_id,
            store.meta.content_length,
            self.bytes_from_peers,
            self.bytes_from_origin,
            elapsed,
            checked,
        )
        await self._report(peer_id, True, "")

    async def _report(self, peer_id: str, success: bool, error: str, digest_mismatch: bool = False) -> None:
        scheduler = self.ctx.scheduler
        if scheduler is None or not peer_id or self._reported:
            return
        self._reported = True
        TASK_DURATION.labels("dfdaemon", "ok" if success else "failed").observe(time.monotonic() - self._started)
        if success:
            self.ctx.peer_ids[self.task_id] = peer_id
        request = scheduler_pb2.ReportPeerResultRequest(
            peer_id=peer_id,
            success=success,
            bytes_from_peers=self.bytes_from_peers,
            bytes_from_origin=self.bytes_from_origin,
            duration_ms=int((time.monotonic() - self._started) * 1000),
            error=error,
            content_digest_mismatch=digest_mismatch,
        )
        try:
            await scheduler.stub().ReportPeerResult(request, timeout=5)
            if not success:
                await scheduler.stub().LeaveTask(scheduler_pb2.LeaveTaskRequest(peer_id=peer_id), timeout=5)
        except grpc.aio.AioRpcError as exc:
            log.info("reporting task=%s to the supernode failed: %s", self.task_id, exc.code().name)
