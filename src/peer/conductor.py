"""One task's download: local cache, swarm (RegisterTask + SyncPieces), or back-to-source, then verification.

The parts live in peer.download; the Conductor runs them through the phases of peer.download.phase and is what the
host's readers (dfget's DaemonService calls, the registry mirror) follow.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

import grpc

from dfcommon.content import ContentRequest
from dfcommon.digest import parse_digest
from dfcommon.errors import DandelionError, DigestMismatch, LocalDiskError, OriginError, Unavailable
from dfcommon.fetchpolicy import unreachable
from dfcommon.identity import display_url
from dfcommon.metrics import ORIGIN_BYTES, PEER_BYTES_RECEIVED, PIECES, TASK_DURATION
from dfcommon.pieces import DEFAULT_PIECE_SIZE, ranges_mask
from peer.context import PeerContext
from peer.download import link
from peer.download.announce import announce
from peer.download.origin_read import OriginRead
from peer.download.phase import DownloadPhase, Phase
from peer.download.reading import SwarmRead
from peer.download.session import Forgotten, OwnReadSink, SwarmGaveUp, SwarmSession
from peer.download.stream_events import TaskNews
from peer.download.verify import ContentCheck
from peer.piece.health import SwarmHealth, local_fault
from peer.piece.model import PieceOutcome
from peer.scheduler_client import SupernodeLink
from peer.storage import TaskStore
from peer.tokenbucket import TokenBucket

log = logging.getLogger(__name__)

INTERNAL_ERROR = "internal error in the dfdaemon (its log has the details)"
# Times one download registers its task again after the supernode forgot this host's peer (the host registered
# again after a failed heartbeat, or was dropped): each time it reports the pieces it holds and goes on.
MAX_REJOINS = 3
MOVE_DELAY_S = (0.3, 0.8)  # a plain peer's wait before it follows a lost supernode: seed peers get there first


class Conductor:
    """Downloads one task once, for any number of readers; pieces become readable as they verify."""

    def __init__(
        self,
        ctx: PeerContext,
        request: ContentRequest,
        task_id: str,
        no_back_source: bool,
        rate_limit: int = 0,
        announce_cached: bool = False,
    ) -> None:
        self.ctx = ctx
        self.announce_cached = announce_cached  # a seed peer's order: a cached copy is offered to the swarm
        self.prefer = ""  # a seed peer's order: the supernode that gave it, registered with while it answers
        self.request = request
        self.task_id = task_id
        self.no_back_source = no_back_source
        self.buckets = [ctx.download_bucket] + ([TokenBucket(rate_limit)] if rate_limit else [])
        self.display_url = display_url(request.url, request.filtered_query_params)
        self.phase = DownloadPhase(task_id)
        self.store: TaskStore | None = None
        self.error: DandelionError | None = None
        self._cancelled_by: DandelionError | None = None  # why cancel() stopped it, for its readers
        self.verified = False
        self.finished = asyncio.Event()
        self.bytes_from_peers = self.bytes_from_origin = 0
        self.from_cache = False
        self.peer_id = ""  # this host's peer in the task's swarm, once registered
        self.host_id = ""  # the host id that peer was registered under
        self.supernode: SupernodeLink | None = None  # the supernode it was registered with
        self.grant: link.Grant | None = None  # the supernode's permission to fetch pieces (renewed on the stream)
        self._reported, self._ready, self._progress = False, asyncio.Event(), asyncio.Event()
        self.check = ContentCheck(request.digest, self.progress)
        self._task: asyncio.Task[None] | None = None
        self._started = time.monotonic()
        self.swarm_read = SwarmRead()  # this peer's read of the origin for the swarm, when the supernode asks
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

    async def cancel(self, why: DandelionError | None = None) -> None:
        """Stop the download (why: what its readers are told; "download cancelled" when None)."""
        if self._task is not None and not self._task.done():
            self._cancelled_by = why
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _shared_error(self, exc: DandelionError) -> str:
        """What the supernode is told (it may show it to remote callers, as a seed peer's preheat error): an origin
        that gave no HTTP answer is "unreachable or not allowed", whatever the reason (closed, filtered, not HTTP,
        refused by the fetch policy), so the swarm is no port scanner; this host's log has the reason."""
        if isinstance(exc, OriginError) and exc.http_status is None:
            return str(unreachable(self.display_url))
        return str(exc)

    # ----- the download
    async def _run(self) -> None:
        try:
            await self._download()
        except DandelionError as exc:
            self._fail(exc)
            await self._report(False, self._shared_error(exc))
        except asyncio.CancelledError:
            self._fail(self._cancelled_by or Unavailable("download cancelled"))
            raise
        except Exception:
            # A bug, not a condition a person can act on: the traceback goes to this log, the reader gets one line.
            # (The cache disk's OSErrors arrive as CacheDiskError from peer.storage, naming the directory.)
            log.exception("task=%s failed", self.task_id)
            self._fail(DandelionError(INTERNAL_ERROR))
        finally:
            self.check.cancel()
            self.swarm_read.cancel()
            if self.store is not None:
                self.store.pins -= 1
            self._ready.set()
            self.finished.set()
            self._pulse()

    def _fail(self, exc: DandelionError) -> None:
        self.error = exc
        if not self.phase.ended:
            self.phase.move(Phase.FAILED)
        log.warning("task=%s url=%s failed: %s", self.task_id, self.display_url, exc)
        if self.store is not None and not self.store.complete:
            self.store.pins -= 1  # content with a digest (checked whole) keeps its verified pieces for the next try
            keep = bool(self.request.digest) and not isinstance(exc, DigestMismatch | LocalDiskError)
            self.ctx.storage.abandon(self.task_id, keep)
            self.store = None
        self._ready.set()
        self._pulse()

    def _use_store(self, store: TaskStore) -> None:
        store.pins += 1
        self.store = store
        self.check.watch(store)
        self._ready.set()
        self._pulse()

    def create_store(self, content_length: int, piece_size: int) -> TaskStore:
        """A new store for the content (OriginListener; and when the swarm says how the content is cut)."""
        store = self.ctx.storage.create(self.task_id, self.display_url, self.request.digest, content_length, piece_size)
        self._use_store(store)
        return store

    async def _download(self) -> None:
        cached = self.ctx.storage.get_complete(self.task_id)
        if cached is not None:
            self.phase.move(Phase.CACHED)
            cached.touch()
            self.from_cache = True
            self.verified = True
            self._use_store(cached)
            if self.announce_cached and self.ctx.scheduler is not None:  # a seed peer's order
                self.peer_id = await announce(self.ctx.scheduler, self, cached, self.ctx.register_timeout)
            self.phase.move(Phase.DONE)
            how = "offered to the swarm from" if self.peer_id else "served from"
            log.info("task=%s %s the local cache", self.task_id, how)
            await self._report(True, "")  # only when it was offered (registered)
            return
        if (partial := self.ctx.storage.get_partial(self.task_id)) is not None:
            self._use_store(partial)  # the verified pieces of an interrupted download: only the rest is fetched
        reason = "no supernode configured"
        if self.ctx.scheduler is not None:
            reason = await self._swarm()
        if (reading := self.swarm_read.task) is not None:
            # This peer's read of the origin for the swarm goes on without the swarm (or ended): its end or error
            # is the download's.
            self.swarm_read.detach()
            self.phase.move(Phase.SOURCING)
            await reading
        if self.store is None or not self.store.all_held():
            if self.no_back_source:
                raise Unavailable(
                    f"cannot download {self.display_url} from the swarm ({reason}) and back-to-source is off"
                )
            log.info("task=%s going back to source: %s", self.task_id, reason)
            if self.phase.current is not Phase.SOURCING:
                self.phase.move(Phase.SOURCING)
            if self.store is not None and not self.bytes_from_origin:  # what it holds came from peers
                self.bytes_from_peers = self.store.completed_length()
            await self._origin_read("").run(self.store)  # everything it lacks
        await self._complete()

    async def _swarm(self) -> str:
        """Register and sync; why the swarm could not finish, or ""."""
        assert self.ctx.scheduler is not None
        reason = ""
        try:
            for rejoin in range(MAX_REJOINS + 1):
                self.peer_id, news, self.grant = await link.register(
                    self.ctx.scheduler, self, self.ctx.register_timeout
                )
                self.phase.move(Phase.READING if self.swarm_read.started else Phase.SWARM)
                self.task_news(news)
                try:
                    await SwarmSession(self, self.peer_id).run()
                    break
                except Forgotten as exc:
                    if rejoin == MAX_REJOINS:
                        raise SwarmGaveUp(str(exc)) from None
                    log.info("task=%s: %s; registering the task again", self.task_id[:12], exc)
                    if self.swarm_read.part:  # the old supernode's split: the new one chooses its readers anew
                        await self.stop_reading()
                    if exc.gone and not self.ctx.seed:  # seed peers reach the next supernode first: they read
                        await asyncio.sleep(random.uniform(*MOVE_DELAY_S))
        except SwarmGaveUp as exc:
            reason = str(exc)
        except DandelionError as exc:
            if exc.code != grpc.StatusCode.UNAVAILABLE:
                raise
            reason = str(exc)
        return reason

    def registered_as(self, supernode: SupernodeLink, host_id: str) -> None:
        """The supernode that took the registration (the rest of the task's calls go there) and the host id."""
        self.supernode, self.host_id = supernode, host_id

    # ----- what a SwarmSession asks of its download (peer.download.session.SessionOwner)
    @property
    def reading(self) -> bool:
        """True while this peer reads the origin for the swarm."""
        return self.swarm_read.running

    def held(self) -> list[tuple[int, str]]:
        """Pieces held, with their digests once the length is known (for the supernode to offer them when this
        peer reads the origin for the swarm; ignored otherwise)."""
        store = self.store
        if store is None:
            return []
        known = store.meta.content_length >= 0
        return [
            (number, (store.piece_digest(number) or self.check.hashes.get(number, "")) if known else "")
            for number in range(store.meta.piece_count)
            if store.has(number)
        ]

    def answer(self) -> tuple[int, int] | None:
        """(length, piece size) when this peer reads the origin for the swarm and the length is known."""
        store = self.store
        if not self.swarm_read.started or store is None or store.meta.content_length < 0:
            return None
        return store.meta.content_length, store.meta.piece_size

    def task_news(self, news: TaskNews) -> None:
        """The task from the supernode: a store once the content's shape is known."""
        if not news.shaped or self.swarm_read.started:
            pass
        elif self.store is None:
            self.create_store(news.content_length, news.piece_size)
        else:  # a partial task kept from before a restart, which the swarm now cuts otherwise, loses its pieces
            self.store.reshape(news.content_length, news.piece_size)

    def attach(self, notify: OwnReadSink) -> None:
        """A session runs: news of this peer's read for the swarm goes there."""
        self.swarm_read.attach(notify)

    def detach(self, notify: OwnReadSink) -> None:
        """That session ended."""
        self.swarm_read.detach(notify)

    def read_for_swarm(self, algorithm: str, ranges: tuple[tuple[int, int], ...] = (), piece_size: int = 0) -> None:
        """Read the origin for the swarm, reporting each piece with its digest as soon as it is stored: the pieces
        in ranges (fetching the others from the swarm meanwhile), or all this peer lacks, cut at piece_size (base);
        a read that runs already only narrows to ranges. The content is hashed whole, as after any origin read."""
        if self.phase.current is not Phase.READING:
            self.phase.move(Phase.READING)
        allowed = ranges_mask(ranges) if ranges else None
        if self.swarm_read.running:
            self.swarm_read.narrow(allowed, ranges)
            return
        if self.swarm_read.start(algorithm, lambda a: self._origin_read(a, allowed, piece_size), self.store, ranges):
            log.info("task=%s reading the origin for the swarm", self.task_id[:12])

    async def stop_reading(self) -> None:
        """Another peer reads the origin for the swarm now: stop this peer's read (what it stored stays)."""
        if await self.swarm_read.stop():
            self.phase.move(Phase.SWARM)
            log.info("task=%s another peer reads the origin now: this peer's read stopped", self.task_id[:12])

    async def read_finished(self) -> None:
        """Wait until this peer's read for the swarm, if any, has ended (its error is the download's, later)."""
        await self.swarm_read.finished()

    def fetched(self, outcome: PieceOutcome, health: SwarmHealth) -> None:
        """A piece fetch's outcome."""
        health.record(outcome)
        local_fault(self.ctx.storage, self.store, outcome, health)
        parent, ok = outcome.parent_peer_id[:8], outcome.success
        log.debug("task=%s piece %d from %s ok=%s", self.task_id[:12], outcome.number, parent, ok)
        PIECES.labels("ok" if outcome.success else "failed").inc()
        if outcome.success:
            self.bytes_from_peers += outcome.size
            PEER_BYTES_RECEIVED.inc(outcome.size)
            self._pulse()

    # ----- reading the origin (peer.download.origin_read.OriginListener)
    def _origin_read(self, algorithm: str, allowed: int | None = None, piece_base: int = 0) -> OriginRead:
        ctx, hashes = self.ctx, self.check.hashes
        where = (ctx.http, self.request, self.display_url, self.buckets, ctx.storage.directory)
        return OriginRead(*where, hashes, algorithm, self, allowed, piece_base or DEFAULT_PIECE_SIZE)

    def answered(self, store: TaskStore) -> None:
        """The origin's length is known: tell the swarm, when reading for it."""
        self.swarm_read.answered(store)

    def stored(self, number: int, size: int, digest: str) -> None:
        """A piece read from the origin is written."""
        self.check.hashes.setdefault(number, digest)
        self.bytes_from_origin += size
        ORIGIN_BYTES.labels(self.ctx.component).inc(size)
        self._pulse()

    def offer(self, number: int, digest: str) -> None:
        """A piece read from the origin may be offered to the swarm: do so when reading for it."""
        self.swarm_read.offer(number, digest)

    # ----- verification and completion
    async def _complete(self) -> None:
        store = self.store
        assert store is not None
        self.phase.move(Phase.VERIFYING)
        checked = ""
        if self.request.digest:
            checked = ", digest checked here"
            self._pulse()
            actual = await self.check.result(store)
            expected = str(parse_digest(self.request.digest))
            if actual != expected:
                # Every piece from the swarm matched the digest it was given: whoever wrote those digests (the peer
                # that read the origin) is to blame, and the supernode trusts it no more for this content. (A
                # reader says so about its own content: the supernode then drops its digests.)
                blame = bool(self.swarm_read.algorithm) or (self.bytes_from_peers > 0 and not self.check.unhashed)
                await self._report(False, f"digest mismatch: got {actual}", blame)
                raise DigestMismatch(f"content of {self.display_url} has digest {actual}, want {expected}")
        # The disk refuses the metadata (CacheDiskError) before readers get the last byte; the flush of the data,
        # which may take a while, runs after.
        await asyncio.to_thread(store.prepare_complete)
        log.info(  # before a reader gets the last byte: whoever waited for it finds this line in the log
            "task=%s done: %d bytes, %d from peers, %d from origin, %.2fs%s",
            self.task_id,
            store.meta.content_length,
            self.bytes_from_peers,
            self.bytes_from_origin,
            time.monotonic() - self._started,
            checked,
        )
        self.verified = True
        self._pulse()
        await asyncio.to_thread(store.mark_complete)
        self.phase.move(Phase.DONE)
        await self._report(True, "")

    async def _report(self, success: bool, error: str, digest_mismatch: bool = False) -> None:
        supernode = self.supernode
        if supernode is None or not self.peer_id or self._reported:
            return
        self._reported = True
        elapsed = time.monotonic() - self._started
        TASK_DURATION.labels(self.ctx.component, "ok" if success else "failed").observe(elapsed)
        if success:
            self.ctx.peer_ids[self.task_id] = (supernode.address, self.peer_id)
        took, received, read = int(elapsed * 1000), self.bytes_from_peers, self.bytes_from_origin
        result = link.Result(success, received, read, took, error, digest_mismatch)
        await link.report(supernode, self.peer_id, result)
