"""Routing a task's calls over the supernode links (peer.scheduler_cluster): the task's ring over the members that
answer, those marked down last, a seed peer's ordering supernode first while it answers; a registration that finds
every supernode failing or in its back-off registers at once with one that accepts connections again."""

from __future__ import annotations

import socket
import time

import grpc
import pytest
from dandelion.scheduler.v1 import scheduler_pb2
from fixtures.grpc_listener import start_bare_server
from fixtures.processes import free_port

from dfcommon import ring
from dfcommon.errors import Unavailable
from peer.reaching import connects_within
from peer.scheduler_client import SupernodeLink
from peer.scheduler_cluster import RETRY_WAIT_S, SchedulerClient
from peer.supernode_answers import SupernodeDown

MEMBERS = ["127.0.0.71:8002", "127.0.0.72:8002", "127.0.0.73:8002"]
TASKS = [f"{n:064x}" for n in range(50)]


def client() -> SchedulerClient:
    return SchedulerClient(MEMBERS, scheduler_pb2.HostInfo(ip="127.0.0.9", port=1))


def addresses(cluster: SchedulerClient, task_id: str, prefer: str = "") -> list[str]:
    return [link.address for link in cluster.route(task_id, prefer)]


def test_a_link_per_member_and_the_route_is_the_tasks_ring() -> None:
    cluster = client()
    assert list(cluster.links) == MEMBERS
    for task_id in TASKS:
        assert addresses(cluster, task_id) == ring.ranked(task_id, MEMBERS)


def test_a_member_marked_down_is_tried_last_and_back_in_place_when_it_answers() -> None:
    cluster = client()
    down = cluster.links[MEMBERS[1]]
    down.mark_down("test")
    assert not down.up and down.host_id == ""
    for task_id in TASKS:
        ranked = ring.ranked(task_id, MEMBERS)
        assert addresses(cluster, task_id) == [*(m for m in ranked if m != MEMBERS[1]), MEMBERS[1]]
    down.up = True
    assert all(addresses(cluster, task_id) == ring.ranked(task_id, MEMBERS) for task_id in TASKS)


def test_the_preferred_supernode_comes_first_only_while_it_answers() -> None:
    cluster = client()
    task_id = TASKS[0]
    last = ring.ranked(task_id, MEMBERS)[-1]
    assert addresses(cluster, task_id, prefer=last)[0] == last
    cluster.links[last].mark_down("test")
    assert addresses(cluster, task_id, prefer=last) == ring.ranked(task_id, MEMBERS)


def lone_link_in_backoff(address: str, remaining: float) -> tuple[SchedulerClient, SupernodeLink, list[float]]:
    """One member whose reconnect back-off has `remaining` seconds to run; its calls fail until it is over (as
    ensure_registered does) and return "answer" after. The list gets the time of each call."""
    cluster = SchedulerClient([address], scheduler_pb2.HostInfo(ip="127.0.0.9", port=1))
    link = cluster.links[address]
    link.mark_down("test")
    link._reconnect.not_before = time.monotonic() + remaining
    calls: list[float] = []

    async def call(invoke: object) -> str:
        calls.append(time.monotonic())
        if link.retry_in() > 0:
            raise SupernodeDown(f"supernode {link.address} unreachable; next try in {link.retry_in():.1f}s")
        return "answer"

    link.call = call  # type: ignore[method-assign,assignment]
    return cluster, link, calls


async def test_a_download_registers_at_once_with_a_supernode_in_its_back_off_that_is_back() -> None:
    """A supernode that restarted accepts connections while its hosts' back-off runs on: the download registers
    there now instead of reading the origin."""
    port = free_port("127.0.0.71")
    server = await start_bare_server("127.0.0.71", port)
    try:
        cluster, link, calls = lone_link_in_backoff(f"127.0.0.71:{port}", 30)
        began = time.monotonic()
        answer, used = await cluster.call(TASKS[0], lambda stub, host_id: None)  # type: ignore[arg-type,return-value]
        assert (answer, used) == ("answer", link)
        assert len(calls) == 2 and time.monotonic() - began < RETRY_WAIT_S
        await cluster.close(leave=False)
    finally:
        await server.stop(None)


async def test_a_supernode_that_did_not_answer_on_a_connection_that_is_up_is_not_asked_again() -> None:
    """Frozen or behind: its connection is up, its calls time out. The download reads the origin after the first
    failure instead of calling again (the back-off is not ended)."""
    port = free_port("127.0.0.71")
    server = await start_bare_server("127.0.0.71", port)
    try:
        cluster, link, calls = lone_link_in_backoff(f"127.0.0.71:{port}", 30)
        link.stub()
        assert link._channel is not None and await connects_within(link._channel, 2.0)
        with pytest.raises(Unavailable, match="no supernode reachable"):
            await cluster.call(TASKS[0], lambda stub, host_id: None)  # type: ignore[arg-type,return-value]
        assert len(calls) == 1 and link.retry_in() > 20
        await cluster.close(leave=False)
    finally:
        await server.stop(None)


async def test_a_download_does_not_wait_for_a_supernode_that_refuses_connections() -> None:
    cluster, link, calls = lone_link_in_backoff(f"127.0.0.71:{free_port('127.0.0.71')}", 30)
    began = time.monotonic()
    with pytest.raises(Unavailable, match="no supernode reachable"):
        await cluster.call(TASKS[0], lambda stub, host_id: None)  # type: ignore[arg-type,return-value]
    assert len(calls) == 1 and time.monotonic() - began < 0.5
    assert link.retry_in() > 20  # its back-off runs on
    await cluster.close(leave=False)


async def test_a_download_does_not_wait_for_grpcs_next_attempt_while_the_supernode_refuses() -> None:
    """A long outage: gRPC's last connection attempt failed, and it tells of its next one only when that succeeds.
    A TCP connection refused now sends the download to the origin at once."""
    cluster, link, calls = lone_link_in_backoff(f"127.0.0.71:{free_port('127.0.0.71')}", 30)
    link.stub()
    assert link._channel is not None and not await connects_within(link._channel, 2.0)
    assert link._channel.get_state() is grpc.ChannelConnectivity.TRANSIENT_FAILURE
    began = time.monotonic()
    with pytest.raises(Unavailable, match="no supernode reachable"):
        await cluster.call(TASKS[0], lambda stub, host_id: None)  # type: ignore[arg-type,return-value]
    assert len(calls) == 1 and time.monotonic() - began < 0.5
    await cluster.close(leave=False)


async def test_a_download_waits_at_most_retry_wait_for_a_connection() -> None:
    """A listener that takes the TCP connection but never speaks HTTP/2 (a frozen supernode): the download reads the
    origin after RETRY_WAIT_S, not after gRPC's 20 s connect timeout."""
    mute = socket.create_server(("127.0.0.71", 0))
    try:
        cluster, _, calls = lone_link_in_backoff(f"127.0.0.71:{mute.getsockname()[1]}", 30)
        began = time.monotonic()
        with pytest.raises(Unavailable, match="no supernode reachable"):
            await cluster.call(TASKS[0], lambda stub, host_id: None)  # type: ignore[arg-type,return-value]
        assert len(calls) == 1 and RETRY_WAIT_S <= time.monotonic() - began < RETRY_WAIT_S + 1
        await cluster.close(leave=False)
    finally:
        mute.close()
