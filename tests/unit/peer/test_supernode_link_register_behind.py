"""Registering at a supernode that is behind (a fleet registering at once) is asked again while the connection is
up or being set up, until BEHIND_MIN_S from the first try; the wait ends as soon as the connection fails or closes.
A registration that timed out on a connection neither up nor being set up marks the supernode down at once. Against
a real grpc.aio server on loopback whose RegisterHost answers late (or never), and with scripted channel states."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from fixtures.scripted_channel import ScriptedChannel

from dfcommon.backoff import BackoffPolicy
from peer import scheduler_client
from peer.scheduler_client import SupernodeLink
from peer.supernode_answers import SupernodeDown

CALL_TIMEOUT = 0.3
BEHIND_MIN_S = 4.0


class LateScheduler(scheduler_pb2_grpc.SchedulerServiceServicer):
    """Answers the RegisterHost calls numbered in `answers` (1 = the first) at once, refuses those in `refuses` as a
    grpc server whose queue of calls not yet taken up is full does (CANCELLED); the others never."""

    def __init__(self, answers: set[int], refuses: frozenset[int] = frozenset()) -> None:
        self.answers = answers
        self.refuses = refuses
        self.calls = 0

    async def RegisterHost(self, request: Any, context: Any) -> scheduler_pb2.RegisterHostResponse:
        self.calls += 1
        if self.calls in self.refuses:
            await context.abort(grpc.StatusCode.CANCELLED, "Too many pending requests")
        if self.calls not in self.answers:
            await asyncio.sleep(3600)
        return scheduler_pb2.RegisterHostResponse(host_id=f"host-{self.calls}", heartbeat_interval_ms=5000)


@pytest.fixture(autouse=True)
def short_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduler_client, "CALL_TIMEOUT", CALL_TIMEOUT)
    monkeypatch.setattr(scheduler_client, "BEHIND_MIN_S", BEHIND_MIN_S)


async def serve(servicer: LateScheduler) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
async def link_and_servers() -> AsyncIterator[list[Any]]:
    made: list[Any] = []
    yield made
    for item in made:
        if isinstance(item, SupernodeLink):
            await item.close(leave=False)
        else:
            await item.stop(None)


def new_link(address: str) -> SupernodeLink:
    return SupernodeLink(address, scheduler_pb2.HostInfo(hostname="h", ip="127.0.0.1", port=1, upload_slots=4))


async def test_a_registration_unanswered_at_a_supernode_behind_is_asked_again(link_and_servers: list[Any]) -> None:
    scheduler = LateScheduler(answers={2})
    server, address = await serve(scheduler)
    link = new_link(address)
    link_and_servers += [link, server]
    assert await link.ensure_registered() == "host-2"
    assert link.up and scheduler.calls == 2


async def test_a_registration_refused_by_a_supernode_behind_is_asked_again_after_a_pause(
    link_and_servers: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        scheduler_client, "REFUSED_BACKOFF", BackoffPolicy(base=0.2, cap=0.4, jitter=0.0), raising=False
    )
    scheduler = LateScheduler(answers={3}, refuses=frozenset({1, 2}))
    server, address = await serve(scheduler)
    link = new_link(address)
    link_and_servers += [link, server]
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await link.ensure_registered() == "host-3"
    assert link.up and scheduler.calls == 3
    assert loop.time() - began >= 0.2 + 0.4  # paused before each new try: 0.2 s, then 0.4


async def test_the_wait_ends_when_the_connection_is_lost(link_and_servers: list[Any]) -> None:
    scheduler = LateScheduler(answers=set())
    server, address = await serve(scheduler)
    link = new_link(address)
    link_and_servers.append(link)
    loop = asyncio.get_running_loop()
    began = loop.time()
    registering = asyncio.ensure_future(link.ensure_registered())
    for _ in range(250):  # until the first call timed out and the second waits
        if scheduler.calls >= 2 or registering.done():
            break
        await asyncio.sleep(0.02)
    assert scheduler.calls == 2 and not registering.done()
    await server.stop(None)
    with pytest.raises(SupernodeDown):
        await registering
    assert loop.time() - began < BEHIND_MIN_S / 2
    assert not link.up and link.host_id == ""


async def test_a_supernode_behind_past_the_limit_is_marked_down(link_and_servers: list[Any]) -> None:
    scheduler = LateScheduler(answers=set())
    server, address = await serve(scheduler)
    link = new_link(address)
    link_and_servers += [link, server]
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(SupernodeDown):
        await link.ensure_registered()
    assert BEHIND_MIN_S - 0.5 < loop.time() - began < BEHIND_MIN_S + 2
    assert not link.up and scheduler.calls == 2


class FirstCallTimesOut:
    """RegisterHost: the first call times out, the next ones wait for an answer that never comes."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> FirstCallTimesOut:  # the link's stub()
        return self

    async def RegisterHost(self, *_: Any, **__: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.DEADLINE_EXCEEDED, grpc.aio.Metadata(), grpc.aio.Metadata(), "Deadline Exceeded"
            )
        await asyncio.sleep(3600)


def scripted_link(state: grpc.ChannelConnectivity) -> tuple[SupernodeLink, ScriptedChannel, FirstCallTimesOut]:
    link, channel, stub = new_link("127.0.0.1:1"), ScriptedChannel(state), FirstCallTimesOut()
    link._channel = channel  # type: ignore[assignment]
    link.stub = stub  # type: ignore[assignment,method-assign]
    return link, channel, stub


@pytest.mark.parametrize(
    "state",
    [grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.IDLE, grpc.ChannelConnectivity.SHUTDOWN],
)
async def test_a_registration_timed_out_on_a_connection_neither_up_nor_being_set_up_marks_it_down(
    state: grpc.ChannelConnectivity,
) -> None:
    link, _, stub = scripted_link(state)
    with pytest.raises(SupernodeDown):
        await link.ensure_registered()
    assert not link.up and stub.calls == 1


async def test_a_connection_still_being_set_up_is_waited_for_until_its_setup_fails() -> None:
    """A supernode taking up thousands of connections at once sets each up late; one that froze fails the setup."""
    link, channel, stub = scripted_link(grpc.ChannelConnectivity.CONNECTING)
    registering = asyncio.ensure_future(link.ensure_registered())
    for _ in range(100):
        await asyncio.sleep(0.01)
    assert stub.calls == 2 and not registering.done()
    channel.move(grpc.ChannelConnectivity.READY)  # set up: still waiting for the answer
    for _ in range(10):
        await asyncio.sleep(0.01)
    assert not registering.done()
    channel.move(grpc.ChannelConnectivity.TRANSIENT_FAILURE)
    with pytest.raises(SupernodeDown):
        await asyncio.wait_for(registering, 1.0)
    assert not link.up
