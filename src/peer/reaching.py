"""Whether a host's connection to a supernode is up or being set up: while it is, a call that got no answer in
time met a supernode that is behind, not one that is gone (peer.scheduler_client)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

import grpc

from dfcommon.errors import DandelionError
from dfcommon.sizes import parse_hostport

T = TypeVar("T")

# A connection up, or being set up (a supernode taking up thousands of new connections at once sets each up late;
# one that froze, or whose link broke, fails it within grpc's connect timeout, 20 s, or its keepalive, 20 s).
REACHING = (grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.CONNECTING)


def channel_state(channel: grpc.aio.Channel | None) -> grpc.ChannelConnectivity:
    """The channel's connectivity (IDLE before there is a channel), without trying to connect."""
    if channel is None:
        return grpc.ChannelConnectivity.IDLE
    return channel.get_state(try_to_connect=False)


async def while_reaching(channel: grpc.aio.Channel | None, call: Awaitable[T], lost: BaseException) -> T:
    """call's result; lost raised as soon as the connection is neither up nor being set up (it failed or closed: a
    supernode that froze, or whose link broke), the call then cancelled."""
    answer = asyncio.ensure_future(call)
    try:
        while not answer.done():
            state = channel_state(channel)
            if channel is None or state not in REACHING:
                raise lost
            change = asyncio.ensure_future(channel.wait_for_state_change(state))
            try:
                await asyncio.wait((answer, change), return_when=asyncio.FIRST_COMPLETED)
            finally:
                change.cancel()
    finally:
        answer.cancel()
    return answer.result()


async def connects_within(channel: grpc.aio.Channel, within: float, patient: bool = False) -> bool:
    """True when the channel's connection is up, or comes up within `within` seconds: asks gRPC to connect (a TCP
    and TLS handshake, no call; gRPC paces its attempts, dfcommon.channels). False when it does not, or the channel
    closed; unless patient, as soon as an attempt made meanwhile failed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    state = first = channel.get_state(try_to_connect=True)
    changed = False
    while state is not grpc.ChannelConnectivity.READY:
        failed = not patient and state is grpc.ChannelConnectivity.TRANSIENT_FAILURE and (changed or first is not state)
        left = deadline - loop.time()
        if failed or state is grpc.ChannelConnectivity.SHUTDOWN or left <= 0:
            return False
        try:
            async with asyncio.timeout(left):
                await channel.wait_for_state_change(state)
        except TimeoutError:
            return False
        state, changed = channel.get_state(try_to_connect=True), True
    return True


async def accepts_tcp(address: str, within: float) -> bool:
    """True when something at "HOST:PORT" accepts a TCP connection within `within` seconds (closed at once): whether
    a server whose last connection attempt failed is back, without waiting for gRPC's next attempt."""
    try:
        host, port = parse_hostport(address)
        async with asyncio.timeout(within):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError, DandelionError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
