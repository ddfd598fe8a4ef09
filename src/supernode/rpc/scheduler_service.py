"""dandelion.scheduler.v1.SchedulerService: validate, convert, delegate to the Swarm."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc
from dandelion.common.v1 import common_pb2
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc

from dfcommon.errors import DandelionError, InvalidArgument, PermissionDenied
from dfcommon.grants import GrantIssuer
from dfcommon.inspection import InspectionPolicy, common_names
from dfcommon.urlmeta import to_url_meta
from supernode.access import RegistrationCheck
from supernode.rpc import convert, pages, validate
from supernode.rpc.errors import abort, mapped, quiet
from supernode.streams import Assigned, Beat, GoToSource, RenewGrant, StreamEnd, StreamEvent, TaskChanged
from supernode.swarm import Swarm

Context = grpc.aio.ServicerContext[Any, Any]
MIN_TASK_PREFIX = 12  # GetTask takes a unique prefix of a task id this long (the logs print 12 characters)


class SchedulerService(scheduler_pb2_grpc.SchedulerServiceServicer):
    """The scheduler's RPCs; the inspection ones (ListTasks, GetTask, ListHosts) only for whom inspection allows."""

    def __init__(
        self,
        swarm: Swarm,
        inspection: InspectionPolicy | None = None,
        grants: GrantIssuer | None = None,
        access: RegistrationCheck | None = None,
    ) -> None:
        self.swarm = swarm
        self.inspection = inspection if inspection is not None else InspectionPolicy()
        self.grants = grants  # signs access grants; None: this supernode issues none
        self.access = access  # asks the origin before a registration is granted; None: all are granted

    @mapped
    async def RegisterHost(  # type: ignore[override]
        self, request: scheduler_pb2.RegisterHostRequest, context: Context
    ) -> scheduler_pb2.RegisterHostResponse:
        """Register a host (as a seed peer only with a seed certificate, when TLS is on)."""
        spec = validate.host(request.host, context.peer())
        if spec.seed:
            self._check_seed_role(context)
        host_id = self.swarm.register_host(spec)
        response = scheduler_pb2.RegisterHostResponse(
            host_id=host_id, heartbeat_interval_ms=self.swarm.hosts.interval_ms(), stream_heartbeats=True
        )
        if self.grants is not None:
            response.grant_public_key, response.grant_key_id = self.grants.public_key, self.grants.key_id
        return response

    @mapped
    async def HeartbeatHost(  # type: ignore[override]
        self, request: scheduler_pb2.HeartbeatHostRequest, context: Context
    ) -> scheduler_pb2.HeartbeatHostResponse:
        """Keep a host alive."""
        interval_ms = self.swarm.heartbeat(validate.ident(request.host_id, "host_id"))
        return scheduler_pb2.HeartbeatHostResponse(heartbeat_interval_ms=interval_ms)

    @mapped
    async def LeaveHost(  # type: ignore[override]
        self, request: scheduler_pb2.LeaveHostRequest, context: Context
    ) -> scheduler_pb2.LeaveHostResponse:
        """Remove a host."""
        self.swarm.leave_host(validate.ident(request.host_id, "host_id"))
        return scheduler_pb2.LeaveHostResponse()

    @mapped
    async def RegisterTask(  # type: ignore[override]
        self, request: scheduler_pb2.RegisterTaskRequest, context: Context
    ) -> scheduler_pb2.RegisterTaskResponse:
        """Register a host's download once the origin let it read the URL (supernode.access; answers then at once:
        the task's length follows on its stream)."""
        host_id = validate.ident(request.host_id, "host_id")
        if not request.HasField("url_meta"):
            raise InvalidArgument("url_meta is required")
        meta = validate.url_meta(request.url_meta)
        wanted = convert.content_request(meta)
        if self.access is not None:  # before anything is registered: a refused host joins no swarm
            seed = self.swarm.hosts.get(host_id).seed_peer
            await self.access.admit(wanted, seed, self.swarm.known_length(wanted))
        task, peer = await self.swarm.register_task(host_id, wanted, reads=not request.no_back_source)
        grant = self.grants.issue(task.task_id, host_id) if self.grants is not None else None
        return scheduler_pb2.RegisterTaskResponse(task=convert.task_info(task), peer_id=peer.peer_id, grant=grant)

    def _check_seed_role(self, context: Context) -> None:
        """With mutual TLS only a client certificate with a seed common name registers a seed peer: its piece
        digests are trusted for content without a digest, and it is sent the headers the origin needs. A caller on
        the unix socket of the in-process seed peer (supernode.embedded_seed: a directory only this user can enter)
        is this process."""
        config = self.swarm.config
        if config.tls is None or context.peer().startswith("unix:"):
            return
        names = common_names(context)
        if not config.seed_cn.intersection(names):
            shown = repr(names[0]) if names else "none"
            raise PermissionDenied(
                f"a seed peer needs a client certificate with common name {' or '.join(sorted(config.seed_cn))}; "
                f"this one is {shown}"
            )

    async def SeedTasks(  # type: ignore[override]
        self, request: scheduler_pb2.SeedTasksRequest, context: Context
    ) -> AsyncIterator[scheduler_pb2.SeedTasksResponse]:
        """A seed peer's orders, until it goes away (then it is dropped, and its tasks go to the next seed peer)."""
        try:
            host_id = validate.ident(request.host_id, "host_id")
            queue = self.swarm.hosts.open_orders(host_id)
        except (DandelionError, Exception) as err:
            await abort(context, err)
            return
        try:
            while (order := await queue.get()) is not None:
                yield scheduler_pb2.SeedTasksResponse(task_id=order.task_id, url_meta=to_url_meta(order.request))
        finally:
            self.swarm.hosts.close_orders(host_id, queue)

    async def SyncPieces(  # type: ignore[override]
        self, request_iterator: AsyncIterator[scheduler_pb2.SyncPiecesRequest], context: Context
    ) -> AsyncIterator[scheduler_pb2.SyncPiecesResponse]:
        """One peer's stream: results in, task updates and assignments out."""
        try:
            first = await anext(request_iterator)
            peer_id = validate.ident(first.peer_id, "peer_id")
            validate.sync_request(first)
            outbox = self.swarm.open_stream(
                peer_id, first.window, convert.reports(list(first.results)), convert.origin_answer(first)
            )
            if first.heartbeat:
                self.swarm.stream_update(peer_id, outbox, 0, [], heartbeat=True)
        except StopAsyncIteration:
            return
        except (DandelionError, Exception) as err:
            await abort(context, err)
            return
        reader = asyncio.create_task(self._read(peer_id, request_iterator, outbox))
        renewal = self._renewal(outbox)
        try:
            while True:
                events = [await outbox.get()]
                while not outbox.empty():
                    events.append(outbox.get_nowait())
                grant = self._renewed_grant(peer_id) if any(isinstance(e, RenewGrant) for e in events) else None
                for message, end in _messages(events, grant):
                    if end is not None:
                        if end.error is not None:
                            await abort(context, end.error)
                        return
                    if message is not None:
                        yield message
        finally:
            # Closed before any await: a second cancellation while the reader winds down cannot skip it. The
            # reader, cancelled first, runs no more updates (it gets CancelledError at its next step).
            if renewal is not None:
                renewal.cancel()
            reader.cancel()
            self.swarm.close_stream(peer_id, outbox)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    def _renewal(self, outbox: asyncio.Queue[StreamEvent]) -> Renewal | None:
        """The peer's grant lives `ttl` from RegisterTask: a fresh one on its stream every third of that."""
        return Renewal(self.grants.renew_every, outbox) if self.grants is not None else None

    def _renewed_grant(self, peer_id: str) -> common_pb2.AccessGrant | None:
        """A fresh grant for the peer's host and task (None once the peer is gone or no grants are issued)."""
        peer = self.swarm.scheduler.peers.get(peer_id)
        if peer is None or self.grants is None:
            return None
        return self.grants.issue(peer.task_id, peer.host.host_id)

    async def _read(
        self,
        peer_id: str,
        requests: AsyncIterator[scheduler_pb2.SyncPiecesRequest],
        outbox: asyncio.Queue[StreamEvent],
    ) -> None:
        try:
            async for request in requests:
                if request.peer_id and request.peer_id != peer_id:
                    raise InvalidArgument("peer_id changed within the stream")
                validate.sync_request(request)
                self.swarm.stream_update(
                    peer_id,
                    outbox,
                    request.window,
                    convert.reports(list(request.results)),
                    convert.origin_answer(request),
                    request.heartbeat,
                    convert.read_ranges_applied(request),
                )
        except DandelionError as err:
            outbox.put_nowait(StreamEnd(err))
            return
        except asyncio.CancelledError:
            raise
        except grpc.aio.AbortError:  # this side ended the call (its host dropped, say): nothing left to read
            return
        except Exception as err:  # a broken stream: the writer side notices too
            quiet.log(
                logging.ERROR, f"sync-read:{type(err).__name__}", f"SyncPieces request stream failed: {err!r}", err
            )
            outbox.put_nowait(StreamEnd(DandelionError("the request stream failed")))
            return
        outbox.put_nowait(StreamEnd(None))

    @mapped
    async def ReportPeerResult(  # type: ignore[override]
        self, request: scheduler_pb2.ReportPeerResultRequest, context: Context
    ) -> scheduler_pb2.ReportPeerResultResponse:
        """A peer finished or gave up."""
        self.swarm.report_result(
            validate.ident(request.peer_id, "peer_id"),
            request.success,
            request.error[:1000],
            request.bytes_from_peers,
            request.bytes_from_origin,
            request.duration_ms,
            request.content_digest_mismatch,
        )
        return scheduler_pb2.ReportPeerResultResponse()

    @mapped
    async def LeaveTask(  # type: ignore[override]
        self, request: scheduler_pb2.LeaveTaskRequest, context: Context
    ) -> scheduler_pb2.LeaveTaskResponse:
        """A peer leaves its task."""
        self.swarm.leave_task(validate.ident(request.peer_id, "peer_id"))
        return scheduler_pb2.LeaveTaskResponse()

    @mapped
    async def PreheatTask(  # type: ignore[override]
        self, request: scheduler_pb2.PreheatTaskRequest, context: Context
    ) -> scheduler_pb2.PreheatTaskResponse:
        """Have a seed peer load content into its cache (Unavailable when no seed peer is up or every one failed)."""
        if not request.HasField("url_meta"):
            raise InvalidArgument("url_meta is required")
        meta = validate.url_meta(request.url_meta)
        task = await self.swarm.preheat(convert.content_request(meta))
        return scheduler_pb2.PreheatTaskResponse(task=convert.task_info(task))

    @mapped
    async def ListTasks(  # type: ignore[override]
        self, request: scheduler_pb2.ListTasksRequest, context: Context
    ) -> scheduler_pb2.ListTasksResponse:
        """Known tasks, a page at a time."""
        self.inspection.check(context)
        tasks, after = pages.page(
            self.swarm.scheduler.tasks.values(), lambda t: t.task_id, request.page_size, request.page_token
        )
        return scheduler_pb2.ListTasksResponse(tasks=[convert.task_info(t) for t in tasks], next_page_token=after)

    @mapped
    async def GetTask(  # type: ignore[override]
        self, request: scheduler_pb2.GetTaskRequest, context: Context
    ) -> scheduler_pb2.GetTaskResponse:
        """One task with its swarm."""
        self.inspection.check(context)
        task_id = task_id_from_prefix(self.swarm.scheduler.tasks, validate.ident(request.task_id, "task_id"))
        task = self.swarm.get_task(task_id)
        peers = [convert.peer_info(task, p) for p in task.peers.values()]
        return scheduler_pb2.GetTaskResponse(task=convert.task_info(task), peers=peers)

    @mapped
    async def ListHosts(  # type: ignore[override]
        self, request: scheduler_pb2.ListHostsRequest, context: Context
    ) -> scheduler_pb2.ListHostsResponse:
        """Registered hosts, a page at a time."""
        self.inspection.check(context)
        now = self.swarm.clock()
        hosts, after = pages.page(
            self.swarm.scheduler.hosts.values(), lambda h: h.host_id, request.page_size, request.page_token
        )
        return scheduler_pb2.ListHostsResponse(hosts=[convert.host_info(h, now) for h in hosts], next_page_token=after)


def task_id_from_prefix(tasks: Mapping[str, object], text: str) -> str:
    """The one known task id starting with text (at least MIN_TASK_PREFIX characters, as logs print them); text
    itself when it is a whole id or matches none; InvalidArgument when it matches several."""
    if text in tasks or len(text) < MIN_TASK_PREFIX:
        return text
    matches = [tid for tid in tasks if tid.startswith(text)]
    if len(matches) > 1:
        raise InvalidArgument(f"task_id prefix {text!r} matches {len(matches)} tasks: give more characters")
    return matches[0] if matches else text


class Renewal:
    """Puts RenewGrant into a stream's outbox every `every` seconds: one timer per stream, not one per message."""

    def __init__(self, every: float, outbox: asyncio.Queue[StreamEvent]) -> None:
        self._loop = asyncio.get_running_loop()
        self._every = every
        self._outbox = outbox
        self._timer = self._loop.call_later(every, self._due)

    def _due(self) -> None:
        self._outbox.put_nowait(RenewGrant())
        self._timer = self._loop.call_later(self._every, self._due)

    def cancel(self) -> None:
        self._timer.cancel()


Message = scheduler_pb2.SyncPiecesResponse


def _messages(
    events: list[StreamEvent], grant: common_pb2.AccessGrant | None = None
) -> list[tuple[Message | None, StreamEnd | None]]:
    """Stream events as messages, adjacent assignment batches merged; stops at the first end. The answer to a
    heartbeat and a renewed grant are fields of their own: they ride on the last message of the batch, and only
    a batch with no other message costs a message of their own."""
    out: list[tuple[Message | None, StreamEnd | None]] = []
    pending: list[Any] = []
    interval_ms = 0

    def flush() -> None:
        if pending:
            out.append((Message(assignments=convert.assignments(list(pending))), None))
            pending.clear()

    for event in events:
        if isinstance(event, Assigned):
            pending.extend(event.assignments)
            continue
        flush()
        if isinstance(event, TaskChanged):
            out.append((Message(task=convert.task_info(event.task)), None))
        elif isinstance(event, GoToSource):
            reason = scheduler_pb2.BackToSource(
                reason=event.reason[:1000],
                offer_pieces=event.offer,
                piece_digest=event.piece_digest,
                read_ranges=[scheduler_pb2.PieceRange(first=a, last=b) for a, b in event.ranges],
                piece_size=event.piece_size,
            )
            out.append((Message(back_to_source=reason), None))
        elif isinstance(event, Beat):
            interval_ms = event.interval_ms
        elif isinstance(event, RenewGrant):
            continue
        else:
            out.append((None, event))
            return out
    flush()
    if interval_ms or grant is not None:
        if not out:
            out.append((Message(), None))
        last = out[-1][0]
        assert last is not None
        if interval_ms:
            last.heartbeat_interval_ms = interval_ms
        if grant is not None:
            last.grant.CopyFrom(grant)
    return out
