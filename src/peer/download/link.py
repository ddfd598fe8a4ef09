"""A download's calls to the supernode: RegisterTask, the SyncPieces stream, ReportPeerResult and LeaveTask.

With stream_events, the only place in the download that touches their protobuf messages: what the supernode says
arrives as plain events (LinkEvent), what the download reports leaves as plain data.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import grpc
from dandelion.common.v1 import common_pb2
from dandelion.scheduler.v1 import scheduler_pb2

from dfcommon.content import ContentRequest
from dfcommon.errors import DandelionError, Unavailable
from dfcommon.urlmeta import to_url_meta
from peer.download.stream_events import Ended, LinkEvent, TaskNews, event_of, task_news
from peer.piece.model import PieceOutcome
from peer.scheduler_client import SupernodeLink
from peer.scheduler_cluster import SchedulerClient

if TYPE_CHECKING:
    from dandelion.scheduler.v1.scheduler_pb2_grpc import SchedulerServiceAsyncStub

log = logging.getLogger(__name__)
Grant = common_pb2.AccessGrant  # the supernode's permission to fetch the task's pieces, passed on as it came


class SupernodeFull(Unavailable):
    """The supernode refused the registration at one of its limits (RESOURCE_EXHAUSTED: --max-tasks,
    --max-peers-per-task, --max-hosts): the download reads the origin, as when no supernode answers."""


def piece_result(outcome: PieceOutcome) -> scheduler_pb2.PieceResult:
    """A piece's outcome as the supernode reads it."""
    return scheduler_pb2.PieceResult(
        piece_number=outcome.number,
        parent_peer_id=outcome.parent_peer_id,
        success=outcome.success,
        failure=outcome.failure,  # type: ignore[arg-type]
        duration_ms=outcome.duration_ms,
    )


class Registrant(Protocol):
    """A download registering its task (peer.conductor.Conductor)."""

    request: ContentRequest
    task_id: str
    no_back_source: bool  # the download may not read the origin: never made a reader for the swarm
    prefer: str  # the supernode to register with while it answers ("" the task's owner on its ring)
    supernode: SupernodeLink | None  # the supernode that took the last registration

    def registered_as(self, supernode: SupernodeLink, host_id: str) -> None:
        """The supernode that took the registration, and the host id it went out under there."""


async def register(
    scheduler: SchedulerClient, who: Registrant, deadline_s: float
) -> tuple[str, TaskNews, Grant | None]:
    """RegisterTask at the task's supernode (its ring's owner, or who.prefer while that answers; each attempt
    within deadline_s): (peer id, the task, its access grant or None from a supernode that issues none).
    SupernodeFull when the supernode is at a limit (for this host or for the task)."""
    meta = to_url_meta(who.request)
    used = ""

    def call(stub: SchedulerServiceAsyncStub, host_id: str) -> Awaitable[scheduler_pb2.RegisterTaskResponse]:
        nonlocal used
        used = host_id
        return stub.RegisterTask(  # type: ignore[no-any-return]
            scheduler_pb2.RegisterTaskRequest(host_id=host_id, url_meta=meta, no_back_source=who.no_back_source),
            timeout=deadline_s,
        )

    try:
        response, supernode = await scheduler.call(who.task_id, call, who.prefer)
    except DandelionError as exc:
        if exc.code != grpc.StatusCode.RESOURCE_EXHAUSTED:
            raise
        raise SupernodeFull(f"the supernode is at a limit: {exc}") from None
    who.registered_as(supernode, used)
    grant = response.grant if response.HasField("grant") else None
    return str(response.peer_id), task_news(response.task), grant


@dataclass(frozen=True)
class Result:
    """What a download reports when it ends (ReportPeerResult)."""

    success: bool
    bytes_from_peers: int
    bytes_from_origin: int
    duration_ms: int
    error: str = ""
    digest_mismatch: bool = False  # the whole content did not match although every piece matched its digest


async def report(supernode: SupernodeLink, peer_id: str, result: Result) -> None:
    """ReportPeerResult to the supernode the peer registered with, then LeaveTask when the download failed; a
    failure here is only logged."""
    request = scheduler_pb2.ReportPeerResultRequest(
        peer_id=peer_id,
        success=result.success,
        bytes_from_peers=result.bytes_from_peers,
        bytes_from_origin=result.bytes_from_origin,
        duration_ms=result.duration_ms,
        error=result.error,
        content_digest_mismatch=result.digest_mismatch,
    )
    try:
        await supernode.stub().ReportPeerResult(request, timeout=5)
        if not result.success:
            await supernode.stub().LeaveTask(scheduler_pb2.LeaveTaskRequest(peer_id=peer_id), timeout=5)
    except grpc.aio.AioRpcError as exc:
        log.info("reporting peer=%s to the supernode failed: %s", peer_id[:12], exc.code().name)


START_RETRIES = 3
CORE_ERROR = "Internal error from Core"
CONNECTION_LOST_S = 1.0  # how long a stream that ended CORE_ERROR waits to see its connection go down
LOST_AT_START = (grpc.StatusCode.INTERNAL, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN)


class _LostAtStart(Exception):
    """The stream failed before the supernode's first message (SwarmLink opens it again)."""


class SwarmLink:
    """One SyncPieces stream with the supernode the peer registered with: opened with what this peer holds, then
    results out and events in (to deliver), and renewed access grants (to renewed, at once).

    A stream that fails before the supernode's first message, with INTERNAL, CANCELLED or UNKNOWN, is opened again
    with everything sent on it so far (at most START_RETRIES times), rather than sending the download to the origin:
    a server over its pending-call limit refuses new calls, which grpc.aio reports as INTERNAL "execute_batch" on the
    client's first write (dfcommon.grpcserver raises that limit; an older supernode has grpc's). A supernode that saw
    the lost stream takes the new one in its place.

    Once the supernode answered, the stream carries the host's heartbeats to it (SupernodeLink.carry, beat)."""

    def __init__(
        self,
        supernode: SupernodeLink,
        peer_id: str,
        deliver: Callable[[LinkEvent], None],
        renewed: Callable[[Grant], None] | None = None,
    ) -> None:
        self.peer_id = peer_id
        self._supernode = supernode
        self._deliver = deliver
        self._renewed = renewed
        self._outgoing: asyncio.Queue[scheduler_pb2.SyncPiecesRequest | None] = asyncio.Queue()
        self._call: grpc.aio.StreamStreamCall[scheduler_pb2.SyncPiecesRequest, scheduler_pb2.SyncPiecesResponse]
        self._reader: asyncio.Task[None] | None = None
        self._unanswered: list[scheduler_pb2.SyncPiecesRequest] | None = []  # sent before the first answer
        self._beats: deque[asyncio.Future[int | None]] = deque()  # heartbeats sent, not answered yet
        self._ended = False
        self.restarts = 0
        self.heard = 0.0  # event loop time of the supernode's last message on the stream

    def open(self, window: int, held: Sequence[tuple[int, str]], answer: tuple[int, int] | None) -> None:
        """Open the stream: the window, the pieces held (number, digest or ""), and the origin's answer (length,
        piece size) when this peer reads the origin for the swarm."""
        first = scheduler_pb2.SyncPiecesRequest(peer_id=self.peer_id, window=window)
        for number, digest in held:
            first.results.append(scheduler_pb2.PieceResult(piece_number=number, success=True, digest=digest))
        if answer is not None:
            first.origin.CopyFrom(scheduler_pb2.OriginAnswer(content_length=answer[0], piece_size=answer[1]))
        self._send(first)
        self._start()
        self._reader = asyncio.create_task(self._read())

    def _start(self) -> None:
        outgoing = self._outgoing

        async def requests() -> AsyncIterator[scheduler_pb2.SyncPiecesRequest]:
            while (message := await outgoing.get()) is not None:
                yield message

        self._call = self._supernode.stub().SyncPieces(requests())

    def _restart(self) -> None:
        """Open the stream again with what was sent on the lost one."""
        self._outgoing.put_nowait(None)  # ends the lost call's request iterator
        self._outgoing = asyncio.Queue()
        for message in self._unanswered or []:
            self._outgoing.put_nowait(message)
        self.restarts += 1
        self._start()

    def _send(self, message: scheduler_pb2.SyncPiecesRequest) -> None:
        if self._unanswered is not None:
            self._unanswered.append(message)
        self._outgoing.put_nowait(message)

    def report(self, outcomes: Sequence[PieceOutcome]) -> None:
        """Send the results of fetched pieces."""
        if outcomes:
            results = [piece_result(outcome) for outcome in outcomes]
            self._send(scheduler_pb2.SyncPiecesRequest(peer_id=self.peer_id, results=results))

    def report_held(self, held: Sequence[tuple[int, str]]) -> None:
        """Pieces this peer holds, with their digests (a reader offering what it held before it was made one)."""
        if held:
            results = [scheduler_pb2.PieceResult(piece_number=n, success=True, digest=d) for n, d in held]
            self._send(scheduler_pb2.SyncPiecesRequest(peer_id=self.peer_id, results=results))

    def offer(self, number: int, digest: str) -> None:
        """A piece this peer read from the origin for the swarm is stored: its number and digest."""
        self.report_held([(number, digest)])

    def answer(self, content_length: int, piece_size: int) -> None:
        """What the origin answered to this peer's read for the swarm."""
        origin = scheduler_pb2.OriginAnswer(content_length=content_length, piece_size=piece_size)
        self._send(scheduler_pb2.SyncPiecesRequest(peer_id=self.peer_id, origin=origin))

    def read_applied(self, ranges: Sequence[tuple[int, int]]) -> None:
        """This peer's read for the swarm keeps to ranges now; every piece it stored outside them was offered."""
        applied = [scheduler_pb2.PieceRange(first=first, last=last) for first, last in ranges]
        self._send(scheduler_pb2.SyncPiecesRequest(peer_id=self.peer_id, read_ranges_applied=applied))

    async def beat(self) -> int | None:
        """Send the host's heartbeat on this stream: the heartbeat interval the supernode answered (ms), or None
        when the stream ended first."""
        if self._ended:
            return None
        answered: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._beats.append(answered)
        self._send(scheduler_pb2.SyncPiecesRequest(peer_id=self.peer_id, heartbeat=True))
        return await answered

    def _beat_answered(self, interval_ms: int | None) -> None:
        while self._beats:
            answered = self._beats.popleft()
            if not answered.done():
                answered.set_result(interval_ms)
                return

    def _end(self) -> None:
        """The stream ended: it carries no more heartbeats, and those unanswered get None."""
        self._ended = True
        self._supernode.uncarry(self)
        while self._beats:
            self._beat_answered(None)

    async def close(self) -> None:
        """End this side of the stream and cancel the call (its end was delivered already, or is not wanted)."""
        self._outgoing.put_nowait(None)
        if self._reader is None:
            self._end()
            return
        await asyncio.wait({self._reader}, timeout=1.0)  # its own end or failure was an event already
        self._call.cancel()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)

    async def _read(self) -> None:
        try:
            while True:
                try:
                    await self._read_events()
                    return
                except _LostAtStart:
                    await asyncio.sleep(random.uniform(0.05, 0.2) * self.restarts)
                    self._restart()
        finally:
            self._end()

    async def _read_events(self) -> None:
        try:
            loop = asyncio.get_running_loop()
            while isinstance(message := await self._call.read(), scheduler_pb2.SyncPiecesResponse):
                self.heard = loop.time()
                if self._unanswered is not None:  # the supernode has the stream: no reopening from here on
                    self._unanswered = None
                    self._supernode.carry(self)
                if self._renewed is not None and message.HasField("grant"):
                    self._renewed(message.grant)
                if message.heartbeat_interval_ms:
                    self._beat_answered(message.heartbeat_interval_ms)
                if (event := event_of(message)) is not None:
                    self._deliver(event)
            self._deliver(Ended("the supernode ended the piece stream", False))
        except grpc.aio.AioRpcError as exc:
            if self._unanswered is not None and exc.code() in LOST_AT_START and self.restarts < START_RETRIES:
                code = exc.code().name
                log.info("peer=%s: piece stream lost at its start (%s); opening it again", self.peer_id[:12], code)
                raise _LostAtStart from None
            # NOT_FOUND: the supernode forgot this peer; UNAVAILABLE: it went away (the next registration goes to the
            # next supernode on the task's ring, which rebuilds the task from what its peers report). Both register
            # again.
            gone = exc.code() == grpc.StatusCode.UNAVAILABLE
            if exc.code() == grpc.StatusCode.INTERNAL and exc.details() == CORE_ERROR:
                # grpc.aio ends a call whose connection broke while one of its writes was in flight INTERNAL
                # "Internal error from Core" (grpc/grpc#36066), not UNAVAILABLE: a killed supernode, seen by its
                # connection going down.
                gone = await self._supernode.connection_lost(CONNECTION_LOST_S)
            forgotten = gone or exc.code() == grpc.StatusCode.NOT_FOUND
            if gone:  # the task goes to the next owner on its ring until this one answers a heartbeat again
                self._supernode.mark_down(f"piece stream: {exc.details()}")
            self._deliver(Ended(f"piece stream failed: {exc.code().name} {exc.details()}", forgotten, gone))
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            # The call itself was cancelled, not this reader: its channel was closed.
            self._deliver(Ended("the piece stream's channel was closed", True))
