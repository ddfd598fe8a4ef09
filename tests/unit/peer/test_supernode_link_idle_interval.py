"""A dfdaemon told to beat seldom while it has no peer at a supernode (supernode.hosts.IDLE_FACTOR): it beats at
that interval while the supernode is up, at the usual one (from its registration) once it has it down, and judges a
late call as "behind" by the usual interval, not the idle one. Against a real grpc.aio server on loopback whose
RegisterHost hands out 200 ms and whose HeartbeatHost answers 3 s, as to an idle host."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc

from peer import scheduler_client
from peer.scheduler_client import SupernodeLink

USUAL_MS = 200
IDLE_MS = 3000


class IdleScheduler(scheduler_pb2_grpc.SchedulerServiceServicer):
    """Registers at USUAL_MS; answers every heartbeat with IDLE_MS (the host has no peer here), counting them."""

    def __init__(self) -> None:
        self.beats = 0

    async def RegisterHost(self, request: Any, context: Any) -> scheduler_pb2.RegisterHostResponse:
        return scheduler_pb2.RegisterHostResponse(host_id="host-1", heartbeat_interval_ms=USUAL_MS)

    async def HeartbeatHost(self, request: Any, context: Any) -> scheduler_pb2.HeartbeatHostResponse:
        self.beats += 1
        return scheduler_pb2.HeartbeatHostResponse(heartbeat_interval_ms=IDLE_MS)


@pytest.fixture
async def running() -> AsyncIterator[tuple[IdleScheduler, SupernodeLink]]:
    scheduler = IdleScheduler()
    server = grpc.aio.server()
    scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server(scheduler, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    link = SupernodeLink(
        f"127.0.0.1:{port}", scheduler_pb2.HostInfo(hostname="h", ip="127.0.0.1", port=1, upload_slots=4)
    )
    try:
        await link.ensure_registered()
        link.start()
        yield scheduler, link
    finally:
        await link.close(leave=False)
        await server.stop(None)


async def wait_for_beats(scheduler: IdleScheduler, count: int, within: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while scheduler.beats < count:
        assert loop.time() < deadline, f"{scheduler.beats} heartbeats, {count} expected within {within}s"
        await asyncio.sleep(0.02)


async def wait_told(link: SupernodeLink, seconds: float, within: float) -> None:
    """Until the link has taken in a heartbeat's answer (the server counts a beat before its answer arrives)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while link.beats.told != seconds:
        assert loop.time() < deadline, f"told {link.beats.told}s, {seconds}s expected within {within}s"
        await asyncio.sleep(0.02)


async def test_an_idle_host_beats_at_the_interval_it_was_told_and_at_the_usual_one_once_down(
    running: tuple[IdleScheduler, SupernodeLink],
) -> None:
    scheduler, link = running
    await wait_for_beats(scheduler, 1, within=1.0)  # the first beat, after the usual interval
    await wait_told(link, IDLE_MS / 1000, within=1.0)
    assert link.beats.usual == USUAL_MS / 1000
    await asyncio.sleep(1.0)
    assert scheduler.beats == 1  # idle: the next one is 3 s away
    link.mark_down("test")
    await wait_for_beats(scheduler, 2, within=1.0)  # down: asked again at the usual interval
    assert link.up


async def test_a_late_call_is_behind_by_the_usual_interval_not_the_idle_one(
    running: tuple[IdleScheduler, SupernodeLink], monkeypatch: pytest.MonkeyPatch
) -> None:
    """10 usual intervals are 2 s, 10 idle ones 30 s: a supernode that last answered 5 s ago is gone, not behind."""
    monkeypatch.setattr(scheduler_client, "BEHIND_MIN_S", 1.0)
    scheduler, link = running
    await wait_for_beats(scheduler, 1, within=1.0)
    await wait_told(link, IDLE_MS / 1000, within=1.0)
    now = asyncio.get_running_loop().time()
    link.heard = now - 1.5
    assert link.behind()
    link.heard = now - 5.0
    assert not link.behind()
