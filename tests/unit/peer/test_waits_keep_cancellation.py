"""The waits with a time limit that a dfdaemon's long-running loops make (peer.reaching, SupernodeLink) keep a
cancellation that arrives as the awaited thing completes. Python 3.11's asyncio.wait_for returned the result then
and lost the cancellation: a seed peer's order loop, cancelled as its supernode stopped (the channel's state changed
at that moment), went on forever and the stop never ended."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import grpc
import pytest
from fixtures.scripted_channel import ScriptedChannel

from peer.reaching import connects_within
from peer.scheduler_client import SupernodeLink, host_info


async def cancel_as_it_changes(
    waiting: asyncio.Task[Any], channel: ScriptedChannel, to: grpc.ChannelConnectivity
) -> None:
    await asyncio.sleep(0.05)  # the task waits for a state change
    channel.move(to)  # the wait ends ...
    waiting.cancel()  # ... and the task is cancelled in the same turn of the loop
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await waiting


async def test_a_connection_probe_cancelled_as_the_state_changes_is_cancelled() -> None:
    channel = ScriptedChannel(grpc.ChannelConnectivity.CONNECTING)
    probe = asyncio.create_task(connects_within(cast(grpc.aio.Channel, channel), 30.0, patient=True))
    await cancel_as_it_changes(probe, channel, grpc.ChannelConnectivity.TRANSIENT_FAILURE)


async def test_a_wait_for_a_lost_connection_cancelled_as_it_is_lost_is_cancelled() -> None:
    link = SupernodeLink("127.0.0.75:1", host_info("127.0.0.75", 1, 1))
    channel = ScriptedChannel(grpc.ChannelConnectivity.READY)
    link._channel = cast(grpc.aio.Channel, channel)
    waiting = asyncio.create_task(link.connection_lost(30.0))
    await cancel_as_it_changes(waiting, channel, grpc.ChannelConnectivity.IDLE)
