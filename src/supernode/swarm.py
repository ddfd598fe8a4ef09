"""The supernode's operations: hosts, tasks and peers' streams, on one event loop.

The rpc layer converts messages and calls in here. The parts live beside it: hosts.py (register, heartbeat,
sweep), streams.py (stream events, outboxes), readers.py (who reads the origin for the swarm), seed_peers.py (the
seed peers' orders), scheduling/ (the policy over the resource/ registry). The supernode holds no content: seed
peers and peers read the origin and serve the pieces. All mutable state is owned by the event loop: no locks.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable

from dfcommon.content import ContentRequest
from dfcommon.digest import parse_digest
from dfcommon.errors import InvalidArgument, NotFound, Unavailable
from dfcommon.identity import display_url, request_task_id
from dfcommon.metrics import PIECE_REPORTS
from supernode import carried
from supernode.config import SupernodeConfig
from supernode.hosts import Hosts, HostSpec
from supernode.limits import Limits, evicted
from supernode.readers import MAX_PIECE_NUMBER, OriginAnswer, Readers
from supernode.resource.host import Host
from supernode.resource.peer import MAX_WINDOW, Peer, PeerState
from supernode.resource.piece import Failure, PieceReport
from supernode.resource.states import move_peer, move_task
from supernode.resource.task import Task, TaskState
from supernode.scheduling.evaluator import POLICIES
from supernode.scheduling.scheduler import Scheduler
from supernode.seed_peers import SeedPeers
from supernode.streamless import Streamless
from supernode.streams import Beat, Outboxes, StreamEvent, TaskChanged

log = logging.getLogger(__name__)
# Resolved once: labels() costs four times what inc() does, and every piece report counts.
_REPORTS_OK, _REPORTS_FAILED = PIECE_REPORTS.labels("ok"), PIECE_REPORTS.labels("failed")

PREHEAT_POLL_S = 0.2  # how often a preheat by a seed peer looks whether it is done


class Swarm:
    """Every operation of the scheduler service."""

    def __init__(self, config: SupernodeConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.scheduler = Scheduler(config.assignment_timeout, clock, POLICIES[config.parent_policy])
        self.streams = Outboxes(self.scheduler)
        self.seed_peers = SeedPeers(clock)
        self.readers = Readers(config, self.scheduler, self.streams, self.seed_peers)
        self.hosts = Hosts(config, self.scheduler, self.streams, self.readers, self.seed_peers, clock)
        self.limits = Limits.of(config)
        self.streamless = Streamless(self.scheduler, self.readers, self.leave_task)

    # Hosts (supernode.hosts) --------------------------------------------------------

    def register_host(self, spec: HostSpec) -> str:
        """Register a host (replacing one registered at the same address) and return its id."""
        return self.hosts.register(spec)

    def heartbeat(self, host_id: str) -> int:
        """Keep a host alive; the heartbeat interval to answer with (ms)."""
        return self.hosts.heartbeat(host_id)

    def leave_host(self, host_id: str) -> None:
        """Remove a host and its peers."""
        self.hosts.leave(host_id)

    # Tasks --------------------------------------------------------------------------

    async def register_task(self, host_id: str, request: ContentRequest, reads: bool = True) -> tuple[Task, Peer]:
        """Register a host's download; answers at once (the task's length follows on the peer's stream). One peer
        reads the origin for the swarm (readers.py): a seed peer, ordered now when none reads yet, else for content
        with a digest the first peer that asks and reads (not no_back_source), told so on its stream; the others get
        each piece it stored at once. Content without a digest that no seed peer can read: the peer reads the origin
        for itself (told so when its stream opens)."""
        host = self.hosts.get(host_id)
        host.last_seen = self.clock()
        task = self._task_for(request)
        if not host.seed_peer:  # seed peers are few (a --seed-cn certificate) and the swarm's source: never refused
            self.limits.check_peer(len(task.peers), task.task_id)
        if task.state is TaskState.FAILED:
            self._reset(task)
        if host.seed_peer:
            self.seed_peers.registered(task.task_id, host)
        if not self.readers.wanted(task) or host.address in task.bad_hosts:
            return task, self._add_peer(task, host, PeerState.RUNNING, "", reads)
        if not host.seed_peer and self.readers.order_seed(task, request):
            return task, self._add_peer(task, host, PeerState.RUNNING, ", a seed peer reads the origin", reads)
        if self.readers.may_read(task, host, reads) and not (host.seed_peer and task.length_known):
            peer = self._add_peer(task, host, PeerState.BACK_TO_SOURCE, ", reading the origin for the swarm", reads)
            self.readers.make(task, peer)
            return task, peer
        # A seed peer joining a task begun by another takes the unread part over once its stream opens; a peer of
        # content without a digest that no seed peer reads is sent to the origin when its stream opens.
        return task, self._add_peer(task, host, PeerState.RUNNING, "", reads)

    def _add_peer(self, task: Task, host: Host, state: PeerState, note: str, reads: bool = True) -> Peer:
        peer = Peer(uuid.uuid4().hex, task.task_id, host, state=state, reads=reads)
        if host.address in task.bad_hosts:
            task.bad_parents.add(peer.peer_id)  # its host gave content that did not match the digest
        self.scheduler.add_peer(task, peer)
        self.streamless.registered(peer.peer_id, self.clock())
        tid, pid, hid = task.task_id[:12], peer.peer_id[:12], host.host_id[:12]
        log.info("peer registered task=%s peer=%s host=%s url=%s%s", tid, pid, hid, task.url, note)
        return peer

    async def preheat(self, request: ContentRequest) -> Task:
        """Have a seed peer load the content into its cache and wait until it holds all of it."""
        task = self._task_for(request)
        if task.state is TaskState.FAILED:
            self._reset(task)
        await self._preheat_by_seed_peer(task, request)
        log.info("preheated task=%s url=%s on a seed peer", task.task_id[:12], task.url)
        return task

    async def _preheat_by_seed_peer(self, task: Task, request: ContentRequest) -> None:
        """Until a seed peer holds the whole content: ordered from the seed peers in their order for the task, the
        next one when one fails (each seed peer once); Unavailable once every one failed."""
        tried: set[str] = set()  # seed peers ordered by this preheat (a failed task's ordering is forgotten)
        why = ""
        task.waiting += 1
        try:
            while True:
                seeds = [peer for peer in task.peers.values() if peer.host.seed_peer]
                if any(peer.state is PeerState.SUCCEEDED for peer in seeds):
                    return
                why = self.seed_peers.error(task.task_id) or why
                busy = any(peer.state in (PeerState.RUNNING, PeerState.BACK_TO_SOURCE) for peer in seeds)
                if not (busy or self.seed_peers.pending(task.task_id) or self._order_preheat(task, request, tried)):
                    raise Unavailable(why or f"no seed peer could load {task.url}: no seed peer takes orders")
                await asyncio.sleep(PREHEAT_POLL_S)
        finally:
            task.waiting -= 1

    def _order_preheat(self, task: Task, request: ContentRequest, tried: set[str]) -> bool:
        """Order the task from the next seed peer not tried (whatever origin_fetch says: a preheat is for the seed
        peers)."""
        if not self.seed_peers.up:
            return False
        host = self.seed_peers.order(task.task_id, request, task.bad_hosts | tried)
        if host is not None:
            tried.add(host.address)
        return host is not None

    def _task_for(self, request: ContentRequest) -> Task:
        """The request's task, created on first sight (at --max-tasks, after forgetting the oldest idle task to make
        room; LimitReached when every task has a peer or a preheat waiting)."""
        tid = request_task_id(request)
        task = self.scheduler.tasks.get(tid)
        if task is None:
            if len(self.scheduler.tasks) >= self.limits.tasks:
                self._make_room()
            digest = str(parse_digest(request.digest)) if request.digest else ""
            task = Task(tid, display_url(request.url, request.filtered_query_params), digest)
            self.scheduler.add_task(task)
        return task

    def known_length(self, request: ContentRequest) -> int:
        """The content length of the request's task as known now (-1: no such task yet, or its length unknown)."""
        task = self.scheduler.tasks.get(request_task_id(request))
        return task.content_length if task is not None else -1

    def _reset(self, task: Task) -> None:
        """A failed task starts over."""
        move_task(task, TaskState.PENDING)
        task.error, task.content_length, task.piece_count = "", -1, 0

    def get_task(self, tid: str) -> Task:
        """A known task."""
        task = self.scheduler.tasks.get(tid)
        if task is None:
            raise NotFound(f"unknown task {tid[:80]}")
        return task

    def _make_room(self) -> None:
        """Forget the task idle the longest (no peer in it, no preheat waiting) before its --task-ttl is up."""
        for task in self.scheduler.registry.oldest_idle():
            if not task.waiting:
                log.info(
                    "task forgotten task=%s url=%s: room for a new task at --max-tasks", task.task_id[:12], task.url
                )
                self._forget(task)
                evicted()
                return
        raise self.limits.task_refused(len(self.scheduler.tasks))

    def _forget(self, task: Task) -> None:
        """Forget a task (its peers, if any, are removed first)."""
        self.streams.deliver(self.scheduler.remove_task(task))
        self.readers.reading.discard(task.task_id)
        self.seed_peers.drop(task.task_id)

    def forget_idle_tasks(self) -> int:
        """Forget tasks no peer has been in for task_ttl (seed peers keep their caches: a later registration orders
        the task again, and the seed peer offers its copy); returns how many. A task a preheat awaits is kept for
        another task_ttl."""
        forgotten = 0
        for task in self.scheduler.registry.idle_for(self.config.task_ttl):
            tid = task.task_id
            if task.waiting:
                self.scheduler.registry.keep(task)
                continue
            self._forget(task)
            forgotten += 1
            log.debug("task forgotten task=%s url=%s: no peer for %.0fs", tid[:12], task.url, self.config.task_ttl)
        if forgotten:
            log.info("forgot %d idle tasks, %d left", forgotten, len(self.scheduler.tasks))
        return forgotten

    # Peers --------------------------------------------------------------------------

    def _peer(self, peer_id: str) -> Peer:
        peer = self.scheduler.peers.get(peer_id)
        if peer is None:
            raise NotFound(f"unknown peer {peer_id[:80]}")
        return peer

    def open_stream(
        self, peer_id: str, window: int, reports: list[PieceReport], origin: OriginAnswer | None = None
    ) -> asyncio.Queue[StreamEvent]:
        """A peer opened SyncPieces: returns the queue of what to send it."""
        peer = self._peer(peer_id)
        self.hosts.seen(peer.host)
        task = self.scheduler.tasks[peer.task_id]
        self._check_reports(task, reports)
        outbox = self.streams.open(peer_id)
        self.streamless.opened(peer_id)
        if task.reads_all(peer):
            self.readers.take_authored(task, peer, reports, origin)
            carried.shaped(self.readers, task)
            outbox.put_nowait(TaskChanged(task))
            outbox.put_nowait(self.readers.read_for_swarm(task))
            log.info("stream opened task=%s peer=%s: reads the origin for the swarm", task.task_id[:12], peer_id[:12])
            return outbox
        outbox.put_nowait(TaskChanged(task))
        if peer.state in (PeerState.FAILED, PeerState.BACK_TO_SOURCE):
            move_peer(peer, PeerState.RUNNING)
        reports = carried.adopt(self.readers, task, peer, reports)
        self.streams.deliver(self.scheduler.report(peer, reports))
        log.info(
            "stream opened task=%s peer=%s window=%d held=%d", task.task_id[:12], peer_id[:12], window, peer.held_count
        )
        if task.state is TaskState.FAILED:
            self.streams.to_source(task, peer, task.error or "the task failed")
        elif not self.readers.swarm_reads(task) and not peer.host.seed_peer:
            self.streams.to_source(task, peer, "no seed peer is up to read it for the swarm")
        elif not self.streams.complete(task, peer):
            self.streams.deliver(self.scheduler.connect(peer, window))
            if self.readers.wanted(task) or peer.host.seed_peer:
                self.readers.replace(task.task_id)  # a seed peer, ordered after a reader left, reads what is unread
            else:
                self.readers.split(task, peer)
        return outbox

    def stream_update(
        self,
        peer_id: str,
        outbox: asyncio.Queue[StreamEvent],
        window: int,
        reports: list[PieceReport],
        origin: OriginAnswer | None = None,
        heartbeat: bool = False,
        applied: int | None = None,
    ) -> None:
        """A message on a peer's stream: results and maybe a new window (and, from the task's reader, what the
        origin answered, the digests of the pieces it stored and the pieces it keeps to when told fewer: applied),
        or the heartbeat of the peer's host alone (answered with the interval). Any message shows the host alive."""
        if not self.streams.is_current(peer_id, outbox):
            return
        peer = self._peer(peer_id)
        self.hosts.seen(peer.host)
        if heartbeat:
            self.hosts.beat(peer.host, "stream")
            outbox.put_nowait(Beat(self.hosts.answer(peer.host)))
            if not (reports or window or origin or applied is not None):
                return
        task = self.scheduler.tasks[peer.task_id]
        if reports:
            ok = sum(1 for report in reports if report.success)
            if ok:
                _REPORTS_OK.inc(ok)
            if ok < len(reports):
                _REPORTS_FAILED.inc(len(reports) - ok)
        self._check_reports(task, reports)
        if window:
            peer.window = min(window, MAX_WINDOW)
        if task.reads_all(peer):
            self.readers.take_authored(task, peer, reports, origin)
            if task.carried:
                carried.shaped(self.readers, task)
            return
        if self.readers.reads_ranges(task, peer):  # it reads these (and what was taken from it, until it heard)
            reports = self.readers.take_authored(task, peer, reports, origin, self.readers.own_pieces(task, peer))
        self.streams.deliver(self.scheduler.report(peer, reports))
        self._replace_bad_readers(task, reports)
        if applied is not None:
            self.readers.applied(task, peer, applied)
        if peer.state is PeerState.RUNNING and self.scheduler.hopeless(peer):
            self.streams.to_source(task, peer, "its piece fetches keep failing: no parent can serve it")
            return
        self.streams.complete(task, peer)

    def close_stream(self, peer_id: str, outbox: asyncio.Queue[StreamEvent]) -> None:
        """The peer's stream ended."""
        if not self.streams.close(peer_id, outbox):
            return
        peer = self.scheduler.peers.get(peer_id)
        if peer is not None:
            self.streamless.stream_closed(peer, self.clock())
            self.streams.deliver(self.scheduler.disconnect(peer))
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
        self.streams.deliver(self.scheduler.set_state(peer, state))
        tid, pid, why = peer.task_id[:12], peer_id[:12], f" error={error[:200]}" if error else ""
        log.info(
            "peer result task=%s peer=%s success=%s from_peers=%d from_origin=%d ms=%d%s",
            *(tid, pid, success, from_peers, from_origin, duration_ms, why),
        )
        if peer.host.seed_peer and not success:
            self.seed_peers.failed(peer.task_id, error)
        self.readers.result(self.scheduler.tasks[peer.task_id], peer, success, digest_mismatch)

    def leave_task(self, peer_id: str) -> None:
        """A peer leaves its task."""
        peer = self._peer(peer_id)
        self.streams.end(peer_id, None)
        was_source = self.readers.forget(peer)
        self.streams.deliver(self.scheduler.remove_peer(peer))
        log.info("peer left task=%s peer=%s", peer.task_id[:12], peer_id[:12])
        if was_source:
            self.readers.replace(peer.task_id)

    def _replace_bad_readers(self, task: Task, reports: list[PieceReport]) -> None:
        """A reader (a seed peer) a child got a BAD_DIGEST piece from is distrusted as a parent: it no longer reads
        for the swarm, so the next seed peer reads the pieces nobody else holds (or, none left, the peers of content
        without a digest read the origin themselves) instead of the children waiting for them."""
        for parent_id in {r.parent_id for r in reports if r.failure is Failure.BAD_DIGEST and r.parent_id}:
            parent = task.peers.get(parent_id)
            if parent is not None and parent_id in task.bad_parents and self.readers.forget(parent):
                self.readers.replace(task.task_id)

    def _check_reports(self, task: Task, reports: list[PieceReport]) -> None:
        limit = task.piece_count if task.length_known else MAX_PIECE_NUMBER
        for report in reports:
            if report.number >= limit:
                raise InvalidArgument(f"piece {report.number} out of range: task has {limit} pieces")

    # Timers -------------------------------------------------------------------------

    def shutdown(self) -> None:
        """End every open stream: the supernode is going away."""
        for peer_id in list(self.streams.queues):
            self.streams.end(peer_id, Unavailable("supernode is shutting down"))

    async def run_timers(self) -> None:
        """Expire assignments, drop silent hosts, replace readers without a stream and forget idle tasks,
        forever."""
        tick = min(0.5, self.config.heartbeat_interval_ms / 1000)
        last_sweep = last_tick = self.clock()
        while True:
            await asyncio.sleep(tick)
            try:
                if self.clock() - last_tick > tick + self.config.heartbeat_interval_ms / 1000:
                    log.warning(
                        "the supernode did not run for %.1fs: no host is dropped for it", self.clock() - last_tick
                    )
                    self.hosts.pardon()
                last_tick = self.clock()
                self.streams.deliver(self.scheduler.expire())
                self.readers.tick()
                if self.clock() - last_sweep >= self.config.heartbeat_interval_ms / 1000:
                    last_sweep = self.clock()
                    self.hosts.sweep()
                    for tid in self.seed_peers.overdue():
                        self.readers.replace(tid)
                    self.readers.tell_waiters()
                    self.streamless.sweep(self.clock())
                    self.forget_idle_tasks()
            except Exception:
                log.exception("timer failed")
