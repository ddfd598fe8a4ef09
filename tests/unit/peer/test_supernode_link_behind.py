"""A heartbeat that timed out at a supernode that is behind (its connection, kept by keepalive pings, is up and it
answered this host lately) leaves the supernode up; one that timed out on a connection that is not up, or after
the supernode stayed silent past the limit, marks it down (the host registers there again first)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from dandelion.scheduler.v1 import scheduler_pb2

from peer import scheduler_client
from peer.scheduler_client import BEHIND_INTERVALS, BEHIND_MIN_S, SupernodeLink, is_behind
from peer.supernode_answers import SupernodeBehind, SupernodeDown


@pytest.mark.parametrize(
    ("connected", "heard", "now", "interval", "behind"),
    [
        (True, 100.0, 110.0, 5.0, True),
        (False, 100.0, 110.0, 5.0, False),  # the connection closed (keepalive unanswered, or reset): gone
        (True, 0.0, 110.0, 5.0, False),  # never answered this host
        (True, 100.0, 100.0 + BEHIND_MIN_S + 1, 5.0, False),  # silent past the least limit
        (True, 100.0, 100.0 + BEHIND_MIN_S + 1, 20.0, True),  # ... which grows with the heartbeat interval
        (True, 100.0, 100.0 + BEHIND_INTERVALS * 20.0 + 1, 20.0, False),
    ],
)
def test_is_behind(connected: bool, heard: float, now: float, interval: float, behind: bool) -> None:
    assert is_behind(connected, heard, now, interval) is behind


class FakeChannel:
    def __init__(self, state: grpc.ChannelConnectivity) -> None:
        self.state = state

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self.state


def timed_out(*_: Any) -> Any:
    raise grpc.aio.AioRpcError(
        grpc.StatusCode.DEADLINE_EXCEEDED, grpc.aio.Metadata(), grpc.aio.Metadata(), "Deadline Exceeded"
    )


def link_on(state: grpc.ChannelConnectivity, heard_ago: float) -> SupernodeLink:
    link = SupernodeLink("127.0.0.1:1", scheduler_pb2.HostInfo(hostname="h", ip="127.0.0.1", port=1))
    link.host_id = "host-1"
    link._channel = FakeChannel(state)  # type: ignore[assignment]
    link.stub = lambda: None  # type: ignore[assignment,method-assign,return-value]
    link.heard = asyncio.get_running_loop().time() - heard_ago
    return link


async def test_a_heartbeat_timed_out_at_a_supernode_behind_keeps_it() -> None:
    link = link_on(grpc.ChannelConnectivity.READY, heard_ago=30.0)
    with pytest.raises(SupernodeBehind):
        await link.call(timed_out, patient=True)
    assert link.up and link.host_id == "host-1"


@pytest.mark.parametrize(
    ("state", "heard_ago", "patient"),
    [
        (grpc.ChannelConnectivity.TRANSIENT_FAILURE, 1.0, True),  # its connection closed: frozen, or the link broke
        (grpc.ChannelConnectivity.CONNECTING, 1.0, True),
        (grpc.ChannelConnectivity.READY, BEHIND_MIN_S + 5, True),  # silent too long: its event loop hangs
        (grpc.ChannelConnectivity.READY, 1.0, False),  # a call that needs an answer now (RegisterTask) fails over
    ],
)
async def test_a_timed_out_call_marks_the_supernode_down(
    state: grpc.ChannelConnectivity, heard_ago: float, patient: bool
) -> None:
    link = link_on(state, heard_ago)
    with pytest.raises(SupernodeDown):
        await link.call(timed_out, patient=patient)
    assert not link.up and link.host_id == ""


class SilentCarrier:
    """A piece stream whose heartbeat is never answered and that sends nothing else."""

    heard = 0.0

    async def beat(self) -> int | None:
        await asyncio.sleep(3600)
        return None


@pytest.mark.parametrize(
    ("state", "up"), [(grpc.ChannelConnectivity.READY, True), (grpc.ChannelConnectivity.IDLE, False)]
)
async def test_an_unanswered_stream_heartbeat_at_a_supernode_behind(
    monkeypatch: pytest.MonkeyPatch, state: grpc.ChannelConnectivity, up: bool
) -> None:
    monkeypatch.setattr(scheduler_client, "CALL_TIMEOUT", 0.2)
    link = link_on(state, heard_ago=20.0)
    link.stream_heartbeats = True
    link.carry(SilentCarrier())
    assert await link._beat_on_stream()
    assert link.up is up
