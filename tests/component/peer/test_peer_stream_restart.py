"""A SyncPieces stream lost before the supernode's first message is opened again with everything sent on it; one
lost later is not (its end goes to the download). Real gRPC, a scripted supernode that aborts the first streams
with INTERNAL, as grpc.aio does to a few of the streams that start at once by the thousand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import grpc
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc

from peer.download.link import START_RETRIES, SwarmLink
from peer.download.stream_events import Ended, LinkEvent, TaskNews
from peer.scheduler_client import SupernodeLink


class Registers(scheduler_pb2_grpc.SchedulerServiceServicer):
    """Registers any host as host-1 (heartbeats a minute apart)."""

    async def RegisterHost(  # type: ignore[override]
        self, request: scheduler_pb2.RegisterHostRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.RegisterHostResponse:
        return scheduler_pb2.RegisterHostResponse(host_id="host-1", heartbeat_interval_ms=60_000)


class FlakySupernode(Registers):
    """Aborts the first `lose` streams before answering (or, with `late`, after one message); then answers one
    task message and ends the stream. Records what each stream received."""

    def __init__(self, lose: int, late: bool = False) -> None:
        self.lose = lose
        self.late = late
        self.received: list[list[scheduler_pb2.SyncPiecesRequest]] = []

    async def SyncPieces(  # type: ignore[override]
        self, request_iterator: AsyncIterator[scheduler_pb2.SyncPiecesRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[scheduler_pb2.SyncPiecesResponse]:
        got: list[scheduler_pb2.SyncPiecesRequest] = []
        self.received.append(got)
        got.append(await anext(request_iterator))
        got.append(await anext(request_iterator))  # the offer sent right after opening
        task = scheduler_pb2.SyncPiecesResponse(task=scheduler_pb2.TaskInfo(task_id="t", content_length=1))
        if len(self.received) <= self.lose:
            if self.late:
                yield task
            await context.abort(grpc.StatusCode.INTERNAL, "lost")
        yield task


async def until(done: Callable[[], bool]) -> None:
    for _ in range(1000):
        if done():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("not within 10 s")


async def run(supernode: FlakySupernode) -> tuple[list[LinkEvent], SwarmLink]:
    server = grpc.aio.server()
    scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server(supernode, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    host = scheduler_pb2.HostInfo(hostname="h", ip="127.0.0.1", port=1, upload_slots=1)
    link = SupernodeLink(f"127.0.0.1:{port}", host)
    events: list[LinkEvent] = []
    stream = SwarmLink(link, "peer-1", events.append)
    try:
        stream.open(window=4, held=[(0, "blake3:00")], answer=(1, 1))
        stream.offer(1, "blake3:11")
        await until(lambda: any(isinstance(e, Ended) for e in events))
        await stream.close()
    finally:
        await link.close(leave=False)
        await server.stop(None)
    return events, stream


async def test_a_stream_lost_at_its_start_is_opened_again_with_what_was_sent() -> None:
    supernode = FlakySupernode(lose=2)
    events, stream = await run(supernode)
    assert stream.restarts == 2
    assert [type(e) for e in events] == [TaskNews, Ended]
    assert not events[-1].forgotten and "ended the piece stream" in events[-1].reason  # type: ignore[union-attr]
    assert len(supernode.received) == 3
    assert supernode.received[0] == supernode.received[2]  # the same first message and offer, again
    assert [r.piece_number for r in supernode.received[2][0].results] == [0]
    assert supernode.received[2][0].origin.content_length == 1
    assert [r.piece_number for r in supernode.received[2][1].results] == [1]


async def test_a_stream_lost_after_the_first_answer_is_the_downloads_to_handle() -> None:
    supernode = FlakySupernode(lose=1, late=True)
    events, stream = await run(supernode)
    assert stream.restarts == 0
    assert [type(e) for e in events] == [TaskNews, Ended]
    assert "INTERNAL" in events[-1].reason  # type: ignore[union-attr]


async def test_a_stream_lost_at_every_start_gives_up() -> None:
    supernode = FlakySupernode(lose=100)
    events, stream = await run(supernode)
    assert stream.restarts == START_RETRIES
    assert len(supernode.received) == START_RETRIES + 1
    assert [type(e) for e in events] == [Ended]
    assert "INTERNAL" in events[-1].reason  # type: ignore[union-attr]


class AnswersOnce(Registers):
    """Answers a stream's first message with the task, then reads whatever comes."""

    async def SyncPieces(  # type: ignore[override]
        self, request_iterator: AsyncIterator[scheduler_pb2.SyncPiecesRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[scheduler_pb2.SyncPiecesResponse]:
        await anext(request_iterator)
        yield scheduler_pb2.SyncPiecesResponse(task=scheduler_pb2.TaskInfo(task_id="t", content_length=1))
        async for _ in request_iterator:
            pass


async def test_a_stream_whose_supernode_went_away_while_it_wrote_registers_elsewhere() -> None:
    """However grpc.aio ends the call (UNAVAILABLE, or INTERNAL "Internal error from Core" when one of its writes
    was in flight: grpc/grpc#36066), the supernode is gone: the download registers the task again, at the next
    supernode, rather than reading the origin."""
    server = grpc.aio.server()
    scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server(AnswersOnce(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    link = SupernodeLink(f"127.0.0.1:{port}", scheduler_pb2.HostInfo(hostname="h", ip="127.0.0.1", port=1))
    events: list[LinkEvent] = []
    stream = SwarmLink(link, "peer-1", events.append)
    stopped = False
    try:
        stream.open(window=4, held=[], answer=None)
        await until(lambda: any(isinstance(e, TaskNews) for e in events))
        for number in range(200):  # writes in flight when the server goes
            stream.offer(number, "blake3:" + "00" * 32)
            await asyncio.sleep(0.001)
        await server.stop(None)
        stopped = True
        for number in range(200, 5000):
            if any(isinstance(e, Ended) for e in events):
                break
            stream.offer(number, "blake3:" + "00" * 32)
            await asyncio.sleep(0.001)
        await until(lambda: any(isinstance(e, Ended) for e in events))
        await stream.close()
    finally:
        await link.close(leave=False)
        if not stopped:
            await server.stop(None)
    (ended,) = [e for e in events if isinstance(e, Ended)]
    assert ended.gone and ended.forgotten, ended.reason
    assert not link.up
