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
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from dfcommon import piecedigest
from dfcommon.content import ContentRequest
from dfcommon.digest import parse_digest
from dfcommon.errors import DandelionError, DigestMismatch, InvalidArgument, NotFound, Unavailable
from dfcommon.identity import display_url, task_id
from dfcommon.metrics import PIECE_REPORTS
from dfcommon.pieces import MAX_PIECE_SIZE, piece_count, piece_span
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
# Piece sizes a peer reading the origin for the swarm may cut the content into.
MIN_AUTHOR_PIECE_SIZE = 64 * 1024


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
    """Tell the peer to fetch the origin itself; with offer, to read it for the swarm and report each piece with
    its digest (piece_digest: the algorithm) as soon as it stored it."""

    reason: str
    offer: bool = False
    piece_digest: str = ""


@dataclass(frozen=True)
class OriginAnswer:
    """What the origin answered to the peer that reads it for the swarm."""

    content_length: int
    piece_size: int


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
        # Tasks whose content a peer reads from the origin for the swarm right now: their other peers hear TaskInfo
        # now and then (news that the swarm is at work while they wait for the next piece).
        self._reading: set[str] = set()

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
        sources = []
        for peer_id in list(host.peer_ids):
            self._end_stream(peer_id, why)
            peer = self.scheduler.peers.get(peer_id)
            if peer is not None and self._forget_source(peer):
                sources.append(peer.task_id)
        self._deliver(self.scheduler.remove_host(host))
        for tid in sources:
            self._replace_reader(tid)

    def _host(self, host_id: str) -> Host:
        host = self.scheduler.hosts.get(host_id)
        if host is None:
            raise NotFound(f"unknown host {host_id[:80]}")
        return host

    # Tasks --------------------------------------------------------------------------

    async def register_task(self, host_id: str, request: ContentRequest) -> tuple[Task, Peer]:
        """Register a host's download. For content with a digest and origin_fetch "peer", a peer reads the origin
        for the swarm: the first one to register (told so on its stream), and the others get its pieces as soon as
        it stored each one (the registration answers at once, the task's length follows on the stream). Otherwise
        waits until the seed's origin fetch (or cache) answered."""
        host = self._host(host_id)
        host.last_seen = self.clock()
        task = self._task_for(request)
        if self._peer_reads(task):
            if task.state is TaskState.FAILED:
                self._reset(task)
            if self._wants_reader(task) and host.address not in task.bad_hosts:
                peer = self._add_peer(task, host, PeerState.BACK_TO_SOURCE, ", reading the origin for the swarm")
                self._make_reader(task, peer)
                return task, peer
            return task, self._add_peer(task, host, PeerState.RUNNING, "")
        self._start_seed(task, request)
        job = self.cdn.jobs[task.task_id]
        task.waiting += 1
        try:
            await job.answered.wait()
        finally:
            task.waiting -= 1
        if task.state is TaskState.FAILED:
            raise job.error or DandelionError(task.error)
        if host.host_id not in self.scheduler.hosts:
            raise NotFound(f"unknown host {host_id[:80]}")
        return task, self._add_peer(task, host, PeerState.RUNNING, "")

    def _add_peer(self, task: Task, host: Host, state: PeerState, note: str) -> Peer:
        peer = Peer(uuid.uuid4().hex, task.task_id, host, state=state)
        if host.address in task.bad_hosts:
            task.bad_parents.add(peer.peer_id)  # its host gave content that did not match the digest
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
        task.waiting += 1
        try:
            await job.done.wait()
        finally:
            task.waiting -= 1
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

    def _peer_reads(self, task: Task) -> bool:
        """True when peers, not the seed, read the task's content from the origin: origin_fetch "peer", content
        with a digest (each consumer checks it), and the seed idle and without a cached copy."""
        return (
            self.config.origin_fetch == "peer"
            and bool(task.digest)
            and self._seed_idle(task)
            and not self.cdn.store.holds(task.task_id)
        )

    def _wants_reader(self, task: Task) -> bool:
        """True when nobody reads (or read) the origin for the task and the swarm lacks some piece."""
        return self._source(task) is None and not self._swarm_holds_all(task)

    @staticmethod
    def _swarm_holds_all(task: Task) -> bool:
        """True when every piece has a digest and a trusted holder (whose host heart-beats)."""
        count = task.piece_count
        if not task.length_known or len(task.pieces) < count or len(task.counts) < count:
            return False
        return all(task.counts[number] > 0 for number in range(count))

    def _source(self, task: Task) -> Peer | None:
        """The peer that reads (or read) the task's content from the origin for the swarm, while it is usable."""
        peer = task.peers.get(task.source_peer_id) if task.source_peer_id else None
        if peer is None or peer.state not in (PeerState.BACK_TO_SOURCE, PeerState.SUCCEEDED):
            return None
        return peer

    def _make_reader(self, task: Task, peer: Peer) -> None:
        """The peer reads the origin for the swarm from now on (it is told so on its stream)."""
        task.source_peer_id = peer.peer_id
        self._reading.add(task.task_id)
        outbox = self.outboxes.get(peer.peer_id)
        if outbox is not None:
            if peer.state is not PeerState.BACK_TO_SOURCE:
                self._deliver(self.scheduler.set_state(peer, PeerState.BACK_TO_SOURCE))
            outbox.put_nowait(self._read_for_swarm())
            log.info("reader task=%s peer=%s: reads the origin for the swarm", task.task_id[:12], peer.peer_id[:12])

    def _read_for_swarm(self) -> GoToSource:
        return GoToSource("this peer reads the origin for the swarm", True, self.config.piece_digest)

    def _replace_reader(self, tid: str) -> None:
        """The task's reader is gone or failed: the connected peer that lacks the fewest pieces reads the rest (the
        next peer to register does, when none is connected)."""
        task = self.scheduler.tasks.get(tid)
        if task is None or not self._peer_reads(task) or not self._wants_reader(task):
            return
        candidates = [
            peer
            for peer in task.peers.values()
            if peer.state is PeerState.RUNNING
            and peer.peer_id in self.outboxes
            and peer.host.address not in task.bad_hosts
            and not peer.host.unreachable
        ]
        if candidates:
            self._make_reader(task, max(candidates, key=lambda p: p.held_count))

    def _reset(self, task: Task) -> None:
        """A failed task starts over."""
        self.scheduler.reset_seed(task)
        task.state, task.error, task.content_length, task.piece_count = TaskState.PENDING, "", -1, 0

    def _start_seed(self, task: Task, request: ContentRequest) -> None:
        """Start the seed's origin fetch unless it runs or is done."""
        if not self._seed_idle(task):
            return
        if task.state is TaskState.FAILED:
            self._reset(task)
        self.cdn.start(task.task_id, task.url, task.digest, request)

    def get_task(self, tid: str) -> Task:
        """A known task."""
        task = self.scheduler.tasks.get(tid)
        if task is None:
            raise NotFound(f"unknown task {tid[:80]}")
        return task

    def verified_pieces(self, tid: str) -> Mapping[int, PieceMeta] | None:
        """Pieces the seed wrote and verified, or None for an unknown task."""
        task = self.scheduler.tasks.get(tid)
        if task is None:
            return None
        seed = task.peers[task.seed_peer_id]
        return {number: piece for number, piece in task.pieces.items() if seed.holds(number)}

    # Peers --------------------------------------------------------------------------

    def _peer(self, peer_id: str) -> Peer:
        peer = self.scheduler.peers.get(peer_id)
        if peer is None or peer.is_seed:
            raise NotFound(f"unknown peer {peer_id[:80]}")
        return peer

    def open_stream(
        self, peer_id: str, window: int, reports: list[PieceReport], origin: OriginAnswer | None = None
    ) -> asyncio.Queue[StreamEvent]:
        """A peer opened SyncPieces: returns the queue of what to send it."""
        peer = self._peer(peer_id)
        task = self.scheduler.tasks[peer.task_id]
        self._check_reports(task, reports)
        self._end_stream(peer_id, DandelionError("replaced by a newer stream"))
        outbox: asyncio.Queue[StreamEvent] = asyncio.Queue()
        self.outboxes[peer_id] = outbox
        if task.source_peer_id == peer_id and peer.state is PeerState.BACK_TO_SOURCE:
            self._take_authored(task, peer, reports, origin)
            outbox.put_nowait(TaskChanged(task))
            outbox.put_nowait(self._read_for_swarm())
            log.info("stream opened task=%s peer=%s: reads the origin for the swarm", task.task_id[:12], peer_id[:12])
            return outbox
        outbox.put_nowait(TaskChanged(task))
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
            if self._peer_reads(task) and self._wants_reader(task):
                self._replace_reader(task.task_id)
        return outbox

    def stream_update(
        self,
        peer_id: str,
        outbox: asyncio.Queue[StreamEvent],
        window: int,
        reports: list[PieceReport],
        origin: OriginAnswer | None = None,
    ) -> None:
        """A message on a peer's stream: results and maybe a new window (and, from the task's reader, what the
        origin answered and the digests of the pieces it stored)."""
        if self.outboxes.get(peer_id) is not outbox:
            return
        peer = self._peer(peer_id)
        task = self.scheduler.tasks[peer.task_id]
        for report in reports:
            PIECE_REPORTS.labels("ok" if report.success else "failed").inc()
        self._check_reports(task, reports)
        if window:
            peer.window = min(window, MAX_WINDOW)
        if task.source_peer_id == peer_id and peer.state is PeerState.BACK_TO_SOURCE:
            self._take_authored(task, peer, reports, origin)
            return
        self._deliver(self.scheduler.report(peer, reports))
        if peer.state is PeerState.RUNNING and self.scheduler.hopeless(peer):
            self._to_source(task, peer, "its piece fetches keep failing: no parent can serve it")
            return
        self._complete(task, peer)

    def _take_authored(self, task: Task, reader: Peer, reports: list[PieceReport], origin: OriginAnswer | None) -> None:
        """The reader's news: the origin's answer (length and piece size), and pieces it stored, each offered to the
        swarm at once with the digest the reader computed."""
        if origin is not None:
            self._origin_answered(task, origin)
        offered = []
        for report in reports:
            if not (report.success and not report.parent_id and report.digest):
                continue
            if piecedigest.parse(report.digest) is None:
                raise InvalidArgument(f"piece {report.number} has an unusable digest {report.digest[:80]!r}")
            if not task.length_known or task.piece_size == 0:
                raise InvalidArgument("a piece was reported before the origin's answer (SyncPiecesRequest.origin)")
            if report.number >= task.piece_count:
                raise InvalidArgument(f"piece {report.number} out of range: task has {task.piece_count} pieces")
            offset, size = piece_span(report.number, task.content_length, task.piece_size)
            piece = PieceMeta(report.number, offset, size, report.digest)
            offered.extend(self.scheduler.piece_authored(task, reader, piece))
        self._deliver(offered)

    def _origin_answered(self, task: Task, origin: OriginAnswer) -> None:
        length, piece_size = origin.content_length, origin.piece_size
        if not MIN_AUTHOR_PIECE_SIZE <= piece_size <= MAX_PIECE_SIZE or length < -1:
            raise InvalidArgument(f"origin answer out of range: length {length}, piece size {piece_size}")
        if length >= 0 and piece_count(length, piece_size) > MAX_PIECE_NUMBER:
            raise InvalidArgument(f"content of {length} bytes in pieces of {piece_size} has too many pieces")
        if task.length_known and (length, piece_size) != (task.content_length, task.piece_size):
            if task.pieces:
                raise InvalidArgument(
                    f"origin answer {length}/{piece_size} differs from the task's {task.content_length}/"
                    f"{task.piece_size}"
                )
        elif task.length_known or length < 0:
            return
        task.content_length, task.piece_size = length, piece_size
        task.piece_count = piece_count(length, piece_size)
        task.state = TaskState.RUNNING
        log.info("reader answered task=%s length=%d piece_size=%d", task.task_id[:12], length, piece_size)
        self._broadcast(task)

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
        self,
        peer_id: str,
        success: bool,
        error: str,
        from_peers: int,
        from_origin: int,
        duration_ms: int,
        digest_mismatch: bool = False,
    ) -> None:
        """A peer finished or gave up (digest_mismatch: its content did not match the digest although every piece
        matched the digest it was given)."""
        peer = self._peer(peer_id)
        state = PeerState.SUCCEEDED if success else PeerState.FAILED
        self._deliver(self.scheduler.set_state(peer, state))
        task = self.scheduler.tasks[peer.task_id]
        if task.source_peer_id == peer_id:
            self._reading.discard(task.task_id)
            if not success:
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
        if digest_mismatch and not success and peer_id in task.authors:
            # The reader's own content did not match (the origin sent other bytes): its digests go, it is not lying.
            self.scheduler.forget_pieces(task)
            log.warning(
                "reader's content did not match the digest task=%s: its piece digests are dropped", task.task_id[:12]
            )
        elif digest_mismatch and not success and task.peer_authored:
            self._distrust_authors(task)
        if task.source_peer_id == "" and not success:
            self._replace_reader(task.task_id)

    def leave_task(self, peer_id: str) -> None:
        """A peer leaves its task."""
        peer = self._peer(peer_id)
        self._end_stream(peer_id, None)
        was_source = self._forget_source(peer)
        self._deliver(self.scheduler.remove_peer(peer))
        log.info("peer left task=%s peer=%s", peer.task_id[:12], peer_id[:12])
        if was_source:
            self._replace_reader(peer.task_id)

    def _forget_source(self, peer: Peer) -> bool:
        """A peer goes away: True if it was its task's reader (another is chosen once it is gone)."""
        task = self.scheduler.tasks.get(peer.task_id)
        if task is None or task.source_peer_id != peer.peer_id:
            return False
        task.source_peer_id = ""
        self._reading.discard(task.task_id)
        return True

    def _distrust_authors(self, task: Task) -> None:
        """A consumer's content did not match the task's digest although every piece matched the digests the
        task's authors gave: those authors (and their hosts) are no longer trusted, no piece is offered until a new
        reader gives digests again, and the task's peers fetch what they lack from the origin themselves."""
        authors = [task.peers[a] for a in task.authors if a in task.peers]
        for author in authors:
            task.bad_hosts.add(author.host.address)
        log.warning(
            "content digest mismatch task=%s: distrusting the peers that read the origin %s",
            task.task_id[:12],
            ", ".join(a.peer_id[:12] for a in authors) or "(gone)",
        )
        for author in authors:
            self.scheduler.distrust(task, author)
        self.scheduler.forget_pieces(task)
        if task.source_peer_id:
            self._reading.discard(task.task_id)
            task.source_peer_id = ""
        task.state = TaskState.FAILED
        task.error = "its content did not match the digest; the peer that read the origin is no longer trusted"
        self._broadcast(task)
        for peer in list(task.peers.values()):
            if not peer.is_seed and peer.state is PeerState.RUNNING:
                self._to_source(task, peer, task.error)

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
        if key in self._rechecks or number not in task.pieces:
            return
        self._rechecks[key] = asyncio.get_running_loop().create_task(self._recheck(task, task.pieces[number]))

    async def _recheck(self, task: Task, piece: PieceMeta) -> None:
        try:
            intact = await asyncio.to_thread(self.cdn.store.verify_piece, task.task_id, piece)
        finally:
            self._rechecks.pop((task.task_id, piece.number), None)
        if intact or task.pieces.get(piece.number) != piece:
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
        if task.digest and not task.peer_authored and task.state in (TaskState.PENDING, TaskState.RUNNING):
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

    # Seed listener ------------------------------------------------------------------

    def seed_answered(self, tid: str, content_length: int, piece_size: int) -> None:
        """The origin answered."""
        task = self.scheduler.tasks.get(tid)
        if task is None:
            return
        task.content_length = content_length
        task.piece_size = piece_size
        task.piece_count = piece_count(content_length, piece_size) if content_length >= 0 else 0
        task.state = TaskState.RUNNING
        log.info("seed answered task=%s length=%d piece_size=%d", tid[:12], content_length, piece_size)
        self._broadcast(task)

    def seed_piece(self, tid: str, piece: PieceMeta) -> None:
        """A piece is ready: offer it."""
        task = self.scheduler.tasks.get(tid)
        if task is None:
            return
        self._deliver(self.scheduler.piece_written(task, piece))

    def seed_done(self, tid: str, result: FetchResult) -> None:
        """The seed holds all of the content."""
        task = self.scheduler.tasks.get(tid)
        if task is None:
            return
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
        task = self.scheduler.tasks.get(tid)
        if task is None:
            return
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

    # Timers -------------------------------------------------------------------------

    def _tell_waiters(self) -> None:
        """Peers of a task whose origin a peer reads for the swarm hear the task again now and then: to them that
        is news that the swarm is still at work while they wait for the next piece."""
        for tid in list(self._reading):
            task = self.scheduler.tasks.get(tid)
            if task is None:
                self._reading.discard(tid)
            else:
                self._broadcast(task)

    def forget_idle_tasks(self) -> int:
        """Forget tasks no peer has been in for task_ttl, with their seed fetch jobs (the seed's disk cache stays: a
        later registration loads it again); returns how many. A task whose seed fetch runs, that a registration or
        preheat awaits, or whose seed piece is being re-read, is kept for another task_ttl."""
        forgotten = 0
        for task in self.scheduler.registry.idle_for(self.config.task_ttl):
            tid = task.task_id
            job = self.cdn.jobs.get(tid)
            if task.waiting or (job is not None and not job.done.is_set()) or any(k[0] == tid for k in self._rechecks):
                self.scheduler.registry.keep(task)
                continue
            self._deliver(self.scheduler.remove_task(task))
            self.cdn.jobs.pop(tid, None)
            self._reading.discard(tid)
            forgotten += 1
            log.debug("task forgotten task=%s url=%s: no peer for %.0fs", tid[:12], task.url, self.config.task_ttl)
        if forgotten:
            log.info("forgot %d idle tasks, %d left", forgotten, len(self.scheduler.tasks))
        return forgotten

    async def run_timers(self) -> None:
        """Expire assignments, drop silent hosts and forget idle tasks, forever."""
        tick = min(0.5, self.config.heartbeat_interval_ms / 1000)
        last_sweep = self.clock()
        while True:
            await asyncio.sleep(tick)
            try:
                self._deliver(self.scheduler.expire())
                if self.clock() - last_sweep >= self.config.heartbeat_interval_ms / 1000:
                    last_sweep = self.clock()
                    self.sweep_hosts()
                    self._tell_waiters()
                    self.forget_idle_tasks()
            except Exception:
                log.exception("timer failed")
