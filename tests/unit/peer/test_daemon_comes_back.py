"""dfget waiting for its dfdaemon after the dfdaemon said it is stopping (peer.through_daemon): a new dfdaemon that
answers on the same unix socket path at once is not the old one still stopping. Real gRPC servers on a unix socket."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from peer.through_daemon import _daemon_comes_back, socket_identity


@pytest.fixture
def endpoint() -> Iterator[str]:
    directory = Path(tempfile.mkdtemp(prefix="dl-back-"))  # short: a unix socket path has at most 107 bytes
    try:
        yield f"unix:{directory / 'daemon.sock'}"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def serving(endpoint: str) -> grpc.aio.Server:
    """A gRPC server bound on endpoint (a dfdaemon that answers; no service is needed for that)."""
    server = grpc.aio.server()
    assert server.add_insecure_port(endpoint) != 0
    await server.start()
    return server


def unlink(endpoint: str) -> None:
    Path(endpoint.removeprefix("unix:")).unlink(missing_ok=True)  # what a dfdaemon's stop does


async def test_a_daemon_restarted_at_once_is_taken_for_the_new_one(endpoint: str) -> None:
    """The dfdaemon stopped and its service manager started the next one before dfget looked: it answers on a new
    socket file at once, and dfget goes on through it instead of waiting for it to stop answering."""
    old = await serving(endpoint)
    stopping_on = socket_identity(endpoint)
    await old.stop(0)
    unlink(endpoint)
    new = await serving(endpoint)
    assert socket_identity(endpoint) not in (None, stopping_on)
    try:
        started = time.monotonic()
        ch = await _daemon_comes_back(endpoint, 3.0, True, stopping_on)
        assert ch is not None, "the new dfdaemon was taken for the old one still stopping"
        assert time.monotonic() - started < 2.0
        await ch.close(None)
    finally:
        await new.stop(0)


async def test_a_daemon_that_is_still_stopping_is_waited_for(endpoint: str) -> None:
    """The same dfdaemon, still answering in its grace: not taken for one that came back; once it is gone and the
    next one answers, dfget goes on through the next one."""
    old = await serving(endpoint)
    stopping_on = socket_identity(endpoint)
    try:
        assert await _daemon_comes_back(endpoint, 1.0, True, stopping_on) is None
    finally:
        await old.stop(0)
        unlink(endpoint)

    old = await serving(endpoint)
    stopping_on = socket_identity(endpoint)
    servers = [old]

    async def restart() -> None:
        await asyncio.sleep(0.5)
        await old.stop(0)
        unlink(endpoint)
        await asyncio.sleep(0.3)
        servers.append(await serving(endpoint))

    restarting = asyncio.ensure_future(restart())
    try:
        ch = await _daemon_comes_back(endpoint, 5.0, True, stopping_on)
        await restarting
        assert ch is not None and len(servers) == 2
        assert socket_identity(endpoint) != stopping_on
        await ch.close(None)
    finally:
        restarting.cancel()
        for server in servers:
            await server.stop(0)
