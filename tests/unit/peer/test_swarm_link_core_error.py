"""A piece stream that grpc.aio ended INTERNAL "Internal error from Core" (what it reports for a connection that broke
while one of the stream's writes was in flight, grpc/grpc#36066) is a supernode gone when the connection is down or
goes down within CONNECTION_LOST_S: the download registers the task again, at the next supernode on its ring,
instead of reading the origin. With the connection up, it stays the stream's own failure. No network: a scripted
call and channel."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from dandelion.scheduler.v1 import scheduler_pb2

from peer.download import link as link_module
from peer.download.link import SwarmLink
from peer.download.stream_events import Ended, LinkEvent, TaskNews
from peer.scheduler_client import SupernodeLink

CORE_ERROR = "Internal error from Core"  # grpc.aio's words


class ScriptedCall:
    """A SyncPieces call: the task, then the call ends with `code` and `details`."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details = code, details
        self.read_once = False

    async def read(self) -> Any:
        if not self.read_once:
            self.read_once = True
            return scheduler_pb2.SyncPiecesResponse(task=scheduler_pb2.TaskInfo(task_id="t", content_length=1))
        raise grpc.aio.AioRpcError(self.code, grpc.aio.Metadata(), grpc.aio.Metadata(), self.details)

    def cancel(self) -> None:
        pass


class Channel:
    """A channel in `state` that never changes unless told to, `goes_down` after a moment."""

    def __init__(self, state: grpc.ChannelConnectivity, goes_down: bool = False) -> None:
        self.state, self.goes_down = state, goes_down

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self.state

    async def wait_for_state_change(self, last: grpc.ChannelConnectivity) -> None:
        if not self.goes_down:
            await asyncio.sleep(3600)
        await asyncio.sleep(0.05)
        self.state = grpc.ChannelConnectivity.TRANSIENT_FAILURE

    async def close(self, grace: float | None = None) -> None:
        pass


async def ended_with(channel: Channel, code: grpc.StatusCode, details: str) -> tuple[Ended, SupernodeLink]:
    supernode = SupernodeLink("127.0.0.1:1", scheduler_pb2.HostInfo(hostname="h", ip="127.0.0.1", port=1))
    supernode._channel = channel  # type: ignore[assignment]
    call = ScriptedCall(code, details)

    class Stub:
        def SyncPieces(self, requests: Any) -> ScriptedCall:
            return call

    supernode.stub = Stub  # type: ignore[assignment,method-assign]
    events: list[LinkEvent] = []
    stream = SwarmLink(supernode, "peer-1", events.append)
    stream.open(window=4, held=[], answer=None)
    for _ in range(300):
        if any(isinstance(e, Ended) for e in events):
            break
        await asyncio.sleep(0.01)
    assert isinstance(events[0], TaskNews)
    (ended,) = [e for e in events if isinstance(e, Ended)]
    return ended, supernode


@pytest.fixture(autouse=True)
def short_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(link_module, "CONNECTION_LOST_S", 0.3, raising=False)


@pytest.mark.parametrize(
    "channel",
    [
        Channel(grpc.ChannelConnectivity.TRANSIENT_FAILURE),
        Channel(grpc.ChannelConnectivity.IDLE),
        Channel(grpc.ChannelConnectivity.READY, goes_down=True),
    ],
    ids=["down", "idle", "goes-down"],
)
async def test_a_core_error_on_a_connection_gone_is_the_supernode_gone(channel: Channel) -> None:
    ended, supernode = await ended_with(channel, grpc.StatusCode.INTERNAL, CORE_ERROR)
    assert ended.gone and ended.forgotten, ended.reason
    assert not supernode.up


async def test_a_core_error_on_a_connection_up_is_the_streams_own() -> None:
    ended, supernode = await ended_with(Channel(grpc.ChannelConnectivity.READY), grpc.StatusCode.INTERNAL, CORE_ERROR)
    assert not ended.gone and "INTERNAL" in ended.reason
    assert supernode.up
