"""The supernode's operations: hosts, tasks, peers' streams and the seed, on one event loop.

The rpc layer converts messages and calls in here; fetch jobs report back through the
SeedListener methods. All mutable state is owned by the event loop: no locks.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dfcommon.address import PeerAddress
from dfcommon.content import ContentRequest
from dfcommon.digest import parse_digest
from dfcommon.errors import DandelionError, DigestMismatch, InvalidArgument, NotFound, Unavailable
from dfcommon.identity import display_url, task_id
from dfcommon.metrics import PIECE_REPORTS
from dfcommon.pieces import piece_count
from supernode.config import SupernodeConfig
from supernode.resource.host import Host
from supernode.resource.peer import MAX_WINDOW, Peer, PeerState
from supernode.resource.piece import Failure, PieceMeta, PieceReport
from supernode.resource.task import Task, TaskState
from supernode.scheduling.scheduler import Assignment, Scheduler
from supernode.seed.cdn import Cdn
from supernode.seed.origin import FetchResult
from supernode.seed.uploads import SeedUploads

log = logging.getLogger(__name__)

MISSED_HEARTBEATS = 3
# Bounds a peer's bitmask when the content length is not yet known.
MAX_PIECE_NUMBER = 1 << 20
# Failures blamed on the seed that make it re-read the piece from its disk cache.
_SEED_SUSPECT = frozenset({Failure.BAD_DIGEST, Failure.PARENT_MISSING_PIECE})


@dataclass(frozen=True)
class HostSpec:
    """What a host tells about itself when registering."""

    hostname: str
    ip: str
    port: int
    upload_slots: int
    location: str


@dataclass(frozen=True)
class TaskChanged:
    """Send the task's current metadata."""

    task: Task


@dataclass(frozen=True)
class Assigned:
    """Send piece assignments."""

    assignments: list[Assignment]


@dataclass(frozen=True)
class GoToSource:
    """Tell the peer to fetch the origin itself."""

    reason: str


@dataclass(frozen=True)
class StreamEnd:
    """End the stream: normally (error None) or with the error's status."""

    error: DandelionError | None = None


StreamEvent = TaskChanged | Assigned | GoToSource | StreamEnd


class Swarm:
    """Every operation of the scheduler service, and the listener of the seed's fetch jobs."""

    def __init__(
        self,
        config: SupernodeConfig,
        cdn_factory: Callable[[Swarm], Cdn],
        seed_port: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.clock = clock
        self.scheduler = Scheduler(config.assignment_timeout, clock)
        self.cdn = cdn_factory(self)
        self.seed_host = Host(
            f"seed-{socket.gethostname()}",
            socket.gethostname(),
            config.resolved_advertise_ip(),
            seed_port,
            config.seed_upload_slots,
            "",
            clock(),
            is_seed=True,
        )
        self.uploads = SeedUploads(self.cdn.store, config.seed_upload_slots, self.verified_pieces)
        self.outboxes: dict[str, asyncio.Queue[StreamEvent]] = {}
        self._rechecks: dict[tuple[str, int], asyncio.Task[None]] = {}
        # The request of a source peer, for the seed's copy once that peer is done (its headers stay in memory).
        self._source_requests: dict[str, ContentRequest] = {}
        self._copy_timers: dict[str, asyncio.TimerHandle] = {}
        # Tasks the seed copies from their source peer, until it answers: their peers hear TaskInfo now and then.
        self._copying: set[str] = set()

    # Hosts --------------------------------------------------------------------------

    def register_host(self, spec: HostSpec) -> str:
        """Register a host (replacing one registered at the same address) and return its id."""
        for old in list(self.scheduler.hosts.values()):
            if old.ip == spec.ip and old.port == spec.port:
                log.info("host re-registered host=%s addr=%s:%d", old.host_id[:12], spec.ip, spec.port)
                self._drop_host(old, NotFound("host registered again"))
        host = Host(uuid.uuid4().hex, spec.hostname, spec.ip, spec.port, spec.upload_slots, spec.location, self.clock())
        self.scheduler.add_host(host)
        log.info(
            "host registered host=%s name=%s addr=%s:%d slots=%d",
            host.host_id[:12],
            spec.hostname,
            spec.ip,
            spec.port,
            spec.upload_slots,
        )
        return host.host_id

    def heartbeat(self, host_id: str) -> None:
        """Keep a host alive (and choosable again as a parent if children could not reach it)."""
        host = self._host(host_id)
        host.last_seen = self.clock()
        self._deliver(self.scheduler.host_alive(host))

    def leave_host(self, host_id: str) -> None:
        """Remove a host and its peers."""
        host = self._host(host_id)
        log.info("host left host=%s", host_id[:12])
        self._drop_host(host, NotFound("host left"))

    def sweep_hosts(self) -> None:
        """Drop hosts that missed their heartbeats, with their peers."""
        limit = MISSED_HEARTBEATS * self.config.heartbeat_interval_ms / 1000
        now = self.clock()
        for host in list(self.scheduler.hosts.values()):
            if now - host.last_seen > limit:
                log.warning("host dropped host=%s missed=%d heartbeats", host.host_id[:12], MISSED_HEARTBEATS)
                self._drop_host(host, NotFound("host missed its heartbeats"))

    def _drop_host(self, host: Host, why: DandelionError) -> None:
        for peer_id in list(host.peer_ids):
            self._end_stream(peer_id, why)
            peer = self.scheduler.peers.get(peer_id)
            if peer is not None:
                self._forget_source(peer)
        self._deliver(self.scheduler.remove_host(host))

    def _host(self, host_id: str) -> Host:
        host = self.scheduler.hosts.get(host_id)
        if host is None:
            raise NotFound(f"unknown host {host_id[:80]}")
        return host

    # Tasks --------------------------------------------------------------------------

    async def register_task(self, host_id: str, request: ContentRequest) -> tuple[Task, Peer]:
        """Register a host's download; waits until the origin (or cache) answered, unless the new peer is to fetch
        the origin itself (origin_fetch "peer": the first peer of content with a digest, told so on its stream)."""
        host = self._host(host_id)
        host.last_seen = self.clock()
        task = self._task_for(request)
        if self._wants_source(task):
            if task.state is TaskState.FAILED:
                self._reset(task)
            peer = self._add_peer(task, host, PeerState.BACK_TO_SOURCE, ", fetching the origin itself")
            task.source_peer_id = peer.peer_id
            self._source_requests[task.task_id] = request
            return task, peer
        self._start_seed(task, request)
        job = self.cdn.jobs[task.task_id]
        if task.task_id not in self._copying:  # a copy from a peer answers once it is checked: the stream waits
            await job.answered.wait()
        if task.state is TaskState.FAILED:
            raise job.error or DandelionError(task.error)
        if host.host_id not in self.scheduler.hosts:
            raise NotFound(f"unknown host {host_id[:80]}")
        return task, self._add_peer(task, host, PeerState.RUNNING, "")

    def _add_peer(self, task: Task, host: Host, state: PeerState, note: str) -> Peer:
        peer = Peer(uuid.uuid4().hex, task.task_id, host, state=state)
        self.scheduler.add_peer(task, peer)
        log.info(
            "peer registered task=%s peer=%s host=%s url=%s%s",
            task.task_id[:12],
            peer.peer_id[:12],
            host.host_id[:12],
            task.url,
            note,
        )
        return peer

    async def preheat(self, request: ContentRequest) -> Task:
        """Fetch content into the seed's cache and wait until it is complete."""
        task = self._ensure_task(request)
        job = self.cdn.jobs[task.task_id]
        await job.done.wait()
        if task.state is not TaskState.SUCCEEDED:
            raise job.error or DandelionError(task.error)
        log.info("preheated task=%s url=%s", task.task_id[:12], task.url)
        return task

    def _ensure_task(self, request: ContentRequest) -> Task:
        task = self._task_for(request)
        self._start_seed(task, request)
        return task

    def _task_for(self, request: ContentRequest) -> Task:
        """The request's task, created on first sight."""
        tid = task_id(request.url, request.digest, request.filtered_query_params, request.byte_range)
        task = self.scheduler.tasks.get(tid)
        if task is None:
            digest = str(parse_digest(request.digest)) if request.digest else ""
            task = Task(tid, display_url(request.url, request.filtered_query_params), digest, f"seed-{tid[:16]}")
            self.scheduler.add_task(task, Peer(task.seed_peer_id, tid, self.seed_host, is_seed=True))
        return task

    def _seed_idle(self, task: Task) -> bool:
        """True when the seed has no fetch of the task running or done (none yet, or the last one failed)."""
        job = self.cdn.jobs.get(task.task_id)
        return job is None or (job.done.is_set() and task.state is TaskState.FAILED)

    def _wants_source(self, task: Task) -> bool:
        """True when a new peer of the task should fetch the origin itself: origin_fetch "peer", content with a
        digest (which the seed checks when it copies the content from that peer), the seed idle and without a
        cached copy, and no other peer fetching or holding the origin's content."""
        return (
            self.config.origin_fetch == "peer"
            and bool(task.digest)
            and self._seed_idle(task)
            and self._source(task) is None
            and not self.cdn.store.holds(task.task_id)
        )

    def _source(self, task: Task) -> Peer | None:
        """The peer that fetches (or fetched) the task's content from the origin, while it is usable."""
        peer = task.peers.get(task.source_peer_id) if task.source_peer_id else None
        if peer is None or peer.state not in (PeerState.BACK_TO_SOURCE, PeerState.SUCCEEDED):
            return None
        return peer

    def _reset(self, task: Task) -> None:
        """A failed task starts over."""
        self.scheduler.reset_seed(task)
        task.state, task.error, task.content_length, task.piece_count = TaskState.PENDING, "", -1, 0

    def _start_seed(self, task: Task, request: ContentRequest) -> None:
        """Start the seed's fetch unless it runs or is done: from the origin, or from the source peer."""
        if not self._seed_idle(task):
            return
        if task.state is TaskState.FAILED:
            self._reset(task)
        self._source_requests.pop(task.task_id, None)
        source = self._source(task)
        if source is None:
            self.cdn.start(task.task_id, task.url, task.digest, request)
            return
        address = PeerAddress(source.peer_id, source.host.ip, source.host.port)
        self._copying.add(task.task_id)
        # A source still fetching may hand that fetch over: the seed then serves this peer as it fetches.
        take_over = source.state is PeerState.BACK_TO_SOURCE
        self.cdn.start(task.task_id, task.url, task.digest, request, address, take_over)

    def get_task(self, tid: str) -> Task:
        """A known task."""
        task = self.scheduler.tasks.get(tid)
        if task is None:
            raise NotFound(f"unknown task {tid[:80]}")
        return task

    def verified_pieces(self, tid: str) -> Sequence[PieceMeta] | None:
        """Pieces the seed wrote and verified, or None for an unknown task."""
        task = self.scheduler.tasks.get(tid)
        return None if task is None else task.pieces

    # Peers --------------------------------------------------------------------------

    def _peer(self, peer_id: str) -> Peer:
        peer = self.scheduler.peers.get(peer_id)
        if peer is None or peer.is_seed:
            raise NotFound(f"unknown peer {peer_id[:80]}")
        return peer

    def open_stream(self, peer_id: str, window: int, reports: list[PieceReport]) -> asyncio.Queue[StreamEvent]:
        """A peer opened SyncPieces: returns the queue of what to send it."""
        peer = self._peer(peer_id)
        task = self.scheduler.tasks[peer.task_id]
        self._check_reports(task, reports)
        self._end_stream(peer_id, DandelionError("replaced by a newer stream"))
        outbox: asyncio.Queue[StreamEvent] = asyncio.Queue()
        self.outboxes[peer_id] = outbox
        outbox.put_nowait(TaskChanged(task))
        if task.source_peer_id == peer_id and peer.state is PeerState.BACK_TO_SOURCE:
            outbox.put_nowait(GoToSource("this peer fetches the origin for the swarm; the seed copies it from here"))
            log.info(
                "stream opened task=%s peer=%s: fetching the origin for the swarm", task.task_id[:12], peer_id[:12]
            )
            return outbox
        if peer.state in (PeerState.FAILED, PeerState.BACK_TO_SOURCE):
            peer.state = PeerState.RUNNING
        self._deliver(self.scheduler.report(peer, reports))
        log.info(
            "stream opened task=%s peer=%s window=%d held=%d", task.task_id[:12], peer_id[:12], window, peer.held_count
        )
        if task.state is TaskState.FAILED:
            self._fail_peer(task, peer)
        elif not self._complete(task, peer):
            self._deliver(self.scheduler.connect(peer, window))
        return outbox

    def stream_update(
        self, peer_id: str, outbox: asyncio.Queue[StreamEvent], window: int, reports: list[PieceReport]
    ) -> None:
        """A message on a peer's stream: results and maybe a new window."""
        if self.outboxes.get(peer_id) is not outbox:
            return
        peer = self._peer(peer_id)
        task = self.scheduler.tasks[peer.task_id]
        for report in reports:
            PIECE_REPORTS.labels("ok" if report.success else "failed").inc()
        self._check_reports(task, reports)
        if window:
            peer.window = min(window, MAX_WINDOW)
        self._deliver(self.scheduler.report(peer, reports))
        if peer.state is PeerState.RUNNING and self.scheduler.hopeless(peer):
            self._to_source(task, peer, "its piece fetches keep failing: no parent can serve it")
            return
        self._complete(task, peer)

    def close_stream(self, peer_id: str, outbox: asyncio.Queue[StreamEvent]) -> None:
        """The peer's stream ended."""
        if self.outboxes.get(peer_id) is not outbox:
            return
        del self.outboxes[peer_id]
        peer = self.scheduler.peers.get(peer_id)
        if peer is not None:
            self._deliver(self.scheduler.disconnect(peer))
            log.info("stream closed task=%s peer=%s held=%d", peer.task_id[:12], peer_id[:12], peer.held_count)

    def report_result(
        self, peer_id: str, success: bool, error: str, from_peers: int, from_origin: int, duration_ms: int
    ) -> None:
        """A peer finished or gave up."""
        peer = self._peer(peer_id)
        state = PeerState.SUCCEEDED if success else PeerState.FAILED
        self._deliver(self.scheduler.set_state(peer, state))
        task = self.scheduler.tasks[peer.task_id]
        if task.source_peer_id == peer_id:
            if success:
                self._schedule_copy(task)
            else:
                self._forget_source(peer)
        log.info(
            "peer result task=%s peer=%s success=%s from_peers=%d from_origin=%d ms=%d%s",
            peer.task_id[:12],
            peer_id[:12],
            success,
            from_peers,
            from_origin,
            duration_ms,
            f" error={error[:200]}" if error else "",
        )

    def leave_task(self, peer_id: str) -> None:
        """A peer leaves its task."""
        peer = self._peer(peer_id)
        self._end_stream(peer_id, None)
        self._forget_source(peer)
        self._deliver(self.scheduler.remove_peer(peer))
        log.info("peer left task=%s peer=%s", peer.task_id[:12], peer_id[:12])

    def _forget_source(self, peer: Peer) -> None:
        """A peer goes away: if it was its task's source, the next peer to register fetches the origin (a copy
        from it that runs fails and falls back to the origin by itself)."""
        task = self.scheduler.tasks.get(peer.task_id)
        if task is not None and task.source_peer_id == peer.peer_id:
            task.source_peer_id = ""
            self._source_requests.pop(task.task_id, None)

    def _check_reports(self, task: Task, reports: list[PieceReport]) -> None:
        limit = task.piece_count if task.length_known else MAX_PIECE_NUMBER
        for report in reports:
            if report.number >= limit:
                raise InvalidArgument(f"piece {report.number} out of range: task has {limit} pieces")
            if report.failure in _SEED_SUSPECT and report.parent_id == task.seed_peer_id:
                self._recheck_seed(task, report.number)

    def _recheck_seed(self, task: Task, number: int) -> None:
        """A peer blames the seed for a piece: read it back; fail the seed if it is gone or corrupted."""
        key = (task.task_id, number)
        if key in self._rechecks or number >= len(task.pieces):
            return
        self._rechecks[key] = asyncio.get_running_loop().create_task(self._recheck(task, task.pieces[number]))

    async def _recheck(self, task: Task, piece: PieceMeta) -> None:
        try:
            intact = await asyncio.to_thread(self.cdn.store.verify_piece, task.task_id, piece)
        finally:
            self._rechecks.pop((task.task_id, piece.number), None)
        if intact or piece.number >= len(task.pieces) or task.pieces[piece.number] != piece:
            return
        log.error("seed piece corrupted task=%s piece=%d", task.task_id[:12], piece.number)
        await asyncio.to_thread(self.cdn.store.discard, task.task_id)
        if task.state is not TaskState.FAILED:
            self.seed_failed(task.task_id, Unavailable(f"the seed's copy of {task.url} is corrupted"))

    def _complete(self, task: Task, peer: Peer) -> bool:
        """End the peer's stream once it holds every piece and, for content with a digest, the seed is done:
        the peer then has the seed's word (TaskInfo SUCCEEDED) that the content matches the digest and need
        not hash it again (seed_done completes the peers that wait for it)."""
        if not task.is_complete(peer):
            return False
        if task.digest and task.state in (TaskState.PENDING, TaskState.RUNNING):
            return True
        if peer.state is PeerState.RUNNING:
            self._deliver(self.scheduler.set_state(peer, PeerState.SUCCEEDED))
            log.info("peer complete task=%s peer=%s", task.task_id[:12], peer.peer_id[:12])
        self._end_stream(peer.peer_id, None)
        return True

    def _fail_peer(self, task: Task, peer: Peer) -> None:
        job = self.cdn.jobs.get(task.task_id)
        error = job.error if job is not None else None
        if isinstance(error, DigestMismatch):
            self._end_stream(peer.peer_id, error)
            return
        self._to_source(task, peer, task.error or "the seed cannot fetch the content")

    def _to_source(self, task: Task, peer: Peer, reason: str) -> None:
        """Tell a downloading peer to fetch what it lacks from the origin itself."""
        outbox = self.outboxes.get(peer.peer_id)
        if outbox is not None and peer.state is PeerState.RUNNING:
            outbox.put_nowait(GoToSource(reason))
            self._deliver(self.scheduler.set_state(peer, PeerState.BACK_TO_SOURCE))
            log.info("back to source task=%s peer=%s: %s", task.task_id[:12], peer.peer_id[:12], reason)

    def _end_stream(self, peer_id: str, error: DandelionError | None) -> None:
        outbox = self.outboxes.pop(peer_id, None)
        if outbox is not None:
            outbox.put_nowait(StreamEnd(error))
            peer = self.scheduler.peers.get(peer_id)
            if peer is not None:
                self._deliver(self.scheduler.disconnect(peer))

    def _deliver(self, assignments: list[Assignment]) -> None:
        if not assignments:
            return
        by_child: dict[str, list[Assignment]] = {}
        for assignment in assignments:
            by_child.setdefault(assignment.child_id, []).append(assignment)
        for child_id, batch in by_child.items():
            outbox = self.outboxes.get(child_id)
            if outbox is not None:
                outbox.put_nowait(Assigned(batch))

    def _broadcast(self, task: Task) -> None:
        for peer_id in list(task.peers):
            outbox = self.outboxes.get(peer_id)
            if outbox is not None:
                outbox.put_nowait(TaskChanged(task))

    def _schedule_copy(self, task: Task) -> None:
        """The source peer is done: the seed copies its content after seed_copy_delay (unless another peer's
        registration started the copy already), so the host that just fetched it is not slowed down meanwhile."""
        if task.task_id in self._copy_timers or not self._seed_idle(task):
            return
        loop = asyncio.get_running_loop()
        self._copy_timers[task.task_id] = loop.call_later(self.config.seed_copy_delay, self._copy_now, task.task_id)

    def _copy_now(self, tid: str) -> None:
        self._copy_timers.pop(tid, None)
        task = self.scheduler.tasks.get(tid)
        request = self._source_requests.get(tid)
        if task is None or request is None or not self._seed_idle(task) or self._source(task) is None:
            return
        self._start_seed(task, request)

    # Seed listener ------------------------------------------------------------------

    def source_holds(self, tid: str, peer_id: str) -> None:
        """The seed's copy from the source peer matched the digest: the same bytes are that peer's, in the same
        pieces, so it becomes a parent of every piece (it told the seed its piece size)."""
        task = self.scheduler.tasks.get(tid)
        peer = task.peers.get(peer_id) if task is not None else None
        if task is None or peer is None or peer.state not in (PeerState.BACK_TO_SOURCE, PeerState.SUCCEEDED):
            return
        reports = [PieceReport(number, "", True) for number in range(task.piece_count)]
        self._deliver(self.scheduler.report(peer, reports))
        log.info("source peer holds task=%s peer=%s pieces=%d", tid[:12], peer_id[:12], task.piece_count)

    def source_handed_over(self, tid: str, peer_id: str) -> None:
        """The source peer stopped its origin fetch early, for the seed to fetch the origin (and serve every peer
        as it does); that peer registers again for the rest."""
        self._copying.discard(tid)
        task = self.scheduler.tasks.get(tid)
        if task is not None and task.source_peer_id == peer_id:
            task.source_peer_id = ""
            self._source_requests.pop(tid, None)
        log.info("source peer handed the origin fetch over task=%s peer=%s", tid[:12], peer_id[:12])

    def source_failed(self, tid: str, peer_id: str, error: DandelionError) -> None:
        """The seed could not copy the content from its source peer: that peer is its source no longer."""
        self._copying.discard(tid)
        task = self.scheduler.tasks.get(tid)
        if task is not None and task.source_peer_id == peer_id:
            task.source_peer_id = ""
        log.warning("source peer dropped task=%s peer=%s: %s", tid[:12], peer_id[:12], error)

    def seed_answered(self, tid: str, content_length: int, piece_size: int) -> None:
        """The origin answered."""
        self._copying.discard(tid)
        task = self.scheduler.tasks[tid]
        task.content_length = content_length
        task.piece_size = piece_size
        task.piece_count = piece_count(content_length, piece_size) if content_length >= 0 else 0
        task.state = TaskState.RUNNING
        log.info("seed answered task=%s length=%d piece_size=%d", tid[:12], content_length, piece_size)
        self._broadcast(task)

    def seed_piece(self, tid: str, piece: PieceMeta) -> None:
        """A piece is ready: offer it."""
        task = self.scheduler.tasks[tid]
        self._deliver(self.scheduler.piece_written(task, piece))

    def seed_done(self, tid: str, result: FetchResult) -> None:
        """The seed holds all of the content."""
        task = self.scheduler.tasks[tid]
        task.content_length = result.content_length
        task.piece_size = result.piece_size
        task.piece_count = len(result.pieces)
        task.state = TaskState.SUCCEEDED
        self._broadcast(task)
        for peer in list(task.peers.values()):
            if peer.peer_id in self.outboxes:
                self._complete(task, peer)

    def seed_failed(self, tid: str, error: DandelionError) -> None:
        """The seed's fetch failed: peers fetch the origin themselves, or stop on a digest mismatch."""
        self._copying.discard(tid)
        task = self.scheduler.tasks[tid]
        task.state = TaskState.FAILED
        task.error = str(error)
        self.scheduler.reset_seed(task)
        self._broadcast(task)
        for peer in list(task.peers.values()):
            if not peer.is_seed and peer.state is PeerState.RUNNING:
                self._fail_peer(task, peer)

    def shutdown(self) -> None:
        """End every open stream: the supernode is going away."""
        for peer_id in list(self.outboxes):
            self._end_stream(peer_id, Unavailable("supernode is shutting down"))
        for recheck in self._rechecks.values():
            recheck.cancel()
        for timer in self._copy_timers.values():
            timer.cancel()
        self._copy_timers.clear()
        self._source_requests.clear()

    # Timers -------------------------------------------------------------------------

    def _tell_copy_waiters(self) -> None:
        """Peers waiting for a copy from a source peer (which the seed offers only once it is checked) hear the
        task again now and then: to them that is news that the swarm is still at work."""
        for tid in list(self._copying):
            task = self.scheduler.tasks.get(tid)
            if task is None:
                self._copying.discard(tid)
            else:
                self._broadcast(task)

    async def run_timers(self) -> None:
        """Expire assignments and drop silent hosts, forever."""
        tick = min(0.5, self.config.heartbeat_interval_ms / 1000)
        last_sweep = self.clock()
        while True:
            await asyncio.sleep(tick)
            try:
                self._deliver(self.scheduler.expire())
                if self.clock() - last_sweep >= self.config.heartbeat_interval_ms / 1000:
                    last_sweep = self.clock()
                    self.sweep_hosts()
                    self._tell_copy_waiters()
            except Exception:
                log.exception("timer failed")
