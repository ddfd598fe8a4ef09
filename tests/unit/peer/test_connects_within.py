"""peer.reaching.connects_within: asking gRPC for a connection to a server that may be back, with the project's
channel options (a handshake, no call)."""

from __future__ import annotations

import asyncio
import socket
import time

import grpc
from fixtures.grpc_listener import start_bare_server
from fixtures.processes import free_port

from dfcommon.channels import channel
from peer.reaching import connects_within

HOST = "127.0.0.74"


async def serve_after(port: int, delay: float) -> grpc.aio.Server:
    await asyncio.sleep(delay)
    return await start_bare_server(HOST, port)


async def test_a_server_that_is_up_connects_at_once() -> None:
    port = free_port(HOST)
    server = await serve_after(port, 0)
    probe = channel(f"{HOST}:{port}", own_connection=True)
    try:
        began = time.monotonic()
        assert await connects_within(probe, 2.0)
        assert time.monotonic() - began < 1.0
    finally:
        await probe.close()
        await server.stop(None)


async def test_a_refused_connection_ends_the_wait_unless_patient() -> None:
    probe = channel(f"{HOST}:{free_port(HOST)}", own_connection=True)
    try:
        began = time.monotonic()
        assert not await connects_within(probe, 5.0)
        assert time.monotonic() - began < 1.0
    finally:
        await probe.close()


async def test_a_patient_wait_sees_a_server_that_comes_back() -> None:
    """The server is down at first (the connection is refused), then starts: gRPC tries again on its own within
    its capped pause (dfcommon.channels), and the wait ends as soon as the connection is up."""
    port = free_port(HOST)
    probe = channel(f"{HOST}:{port}", own_connection=True)
    starting = asyncio.ensure_future(serve_after(port, 3.0))
    try:
        began = time.monotonic()
        assert await connects_within(probe, 10.0, patient=True)
        assert 3.0 <= time.monotonic() - began < 3.0 + 2 * 1.2 + 2  # gRPC's pause, at most 2 s + 20%, and slack
    finally:
        server = await starting
        await probe.close()
        await server.stop(None)


async def test_a_patient_wait_gives_up_at_its_end() -> None:
    mute = socket.create_server((HOST, 0))  # takes the TCP connection, never speaks HTTP/2
    probe = channel(f"{HOST}:{mute.getsockname()[1]}", own_connection=True)
    try:
        began = time.monotonic()
        assert not await connects_within(probe, 1.5, patient=True)
        assert 1.5 <= time.monotonic() - began < 3.0
    finally:
        await probe.close()
        mute.close()
