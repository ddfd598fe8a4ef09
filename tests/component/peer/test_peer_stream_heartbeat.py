"""An open SyncPieces stream is the host's heartbeat at a supernode that says so (RegisterHostResponse
.streams_keep_alive): the dfdaemon's link sends no HeartbeatHost while one is open there, and heart-beats again once
it ends; a supernode that does not say so (an older one) gets heartbeats throughout. Real gRPC, a scripted
supernode that counts the heartbeats."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import grpc
import pytest
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc

from peer.download.link import LinkEvent, SwarmLink
from peer.scheduler_client import SupernodeLink

INTERVAL_MS = 100


class CountingSupernode(scheduler_pb2_grpc.SchedulerServiceServicer):
    """Registers any host, counts its heartbeats, holds each piece stream open until `release` is set."""

    def __init__(self, keep_alive: bool) -> None:
        self.keep_alive = keep_alive
        self.beats = 0
        self.streams = 0
        self.release = asyncio.Event()

    async def RegisterHost(  # type: ignore[override]
        self, request: scheduler_pb2.RegisterHostRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.RegisterHostResponse:
        return scheduler_pb2.RegisterHostResponse(
            host_id="host-1", heartbeat_interval_ms=INTERVAL_MS, streams_keep_alive=self.keep_alive
        )

    async def HeartbeatHost(  # type: ignore[override]
        self, request: scheduler_pb2.HeartbeatHostRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.HeartbeatHostResponse:
        self.beats += 1
        return scheduler_pb2.HeartbeatHostResponse()

    async def SyncPieces(  # type: ignore[override]
        self, request_iterator: AsyncIterator[scheduler_pb2.SyncPiecesRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[scheduler_pb2.SyncPiecesResponse]:
        await anext(request_iterator)
        self.streams += 1
        await self.release.wait()
        return
        yield  # an async generator that sends nothing


async def until(done: Callable[[], bool]) -> None:
    """Poll done() every 10 ms, for up to 10 s."""
    for _ in range(1000):
        if done():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("not within 10 s")


async def beats_while_streaming(keep_alive: bool) -> tuple[int, int, list[LinkEvent]]:
    """Heartbeats sent during 1 s with a piece stream open, and during 1 s after it ended; the stream's events."""
    supernode = CountingSupernode(keep_alive)
    server = grpc.aio.server()
    scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server(supernode, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    host = scheduler_pb2.HostInfo(hostname="h", ip="127.0.0.1", port=1, upload_slots=1)
    link = SupernodeLink(f"127.0.0.1:{port}", host)
    events: list[LinkEvent] = []
    try:
        await link.ensure_registered()
        link.start()
        stream = SwarmLink(link, "peer-1", events.append)
        stream.open(window=4, held=[], answer=None)
        await until(lambda: supernode.streams > 0 and link.open_streams > 0)
        before = supernode.beats
        await asyncio.sleep(1.0)
        during = supernode.beats - before
        supernode.release.set()
        await until(lambda: bool(events))
        assert link.open_streams == 0
        before = supernode.beats
        await asyncio.sleep(1.0)
        after = supernode.beats - before
        await stream.close()
    finally:
        await link.close(leave=False)
        await server.stop(None)
    return during, after, events


@pytest.mark.parametrize("keep_alive", [True, False])
async def test_an_open_stream_stands_for_heartbeats_where_the_supernode_says_so(keep_alive: bool) -> None:
    during, after, events = await beats_while_streaming(keep_alive)
    assert [type(e).__name__ for e in events] == ["Ended"]
    assert after >= 3  # 5 intervals (the link beats every 0.2 s at most): heart-beating again once the stream ended
    if keep_alive:
        assert during <= 1  # at most one that was already on its way when the stream opened
    else:
        assert during >= 3  # an older supernode counts heartbeats only
