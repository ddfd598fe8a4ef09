"""Fixtures: an origin HTTP server and an in-process supernode on 127.0.0.1:0."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from dandelion.peer.v1 import peer_pb2_grpc
from dandelion.scheduler.v1 import scheduler_pb2_grpc
from fixtures.metrics import metrics_text, samples
from origin_server import Origin

from dfcommon.channels import channel
from supernode.app import Supernode
from supernode.config import SupernodeConfig


@pytest.fixture
def origin() -> Iterator[Origin]:
    server = Origin().start()
    yield server
    server.stop()


def make_config(data_dir: Path, **overrides: object) -> SupernodeConfig:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "listen_host": "127.0.0.1",
        "listen_port": 0,
        "advertise_ip": "127.0.0.1",
        "piece_size": 64 << 10,
    }
    values.update(overrides)
    return SupernodeConfig(**values)  # type: ignore[arg-type]


class Running:
    """A started supernode with stubs to talk to it."""

    def __init__(self, node: Supernode, chan: grpc.aio.Channel) -> None:
        self.node = node
        self.channel = chan
        self.scheduler = scheduler_pb2_grpc.SchedulerServiceStub(chan)
        self.peer = peer_pb2_grpc.PeerServiceStub(chan)


@contextlib.asynccontextmanager
async def started(config: SupernodeConfig) -> AsyncIterator[Running]:
    """A supernode with this config, running for the block."""
    node = Supernode(config)
    port = await node.start()
    chan = channel(f"127.0.0.1:{port}")
    try:
        yield Running(node, chan)
    finally:
        await chan.close(None)
        await node.stop(grace=1)


@pytest.fixture
async def supernode(tmp_path: Path) -> AsyncIterator[Running]:
    async with started(make_config(tmp_path / "data")) as running:
        yield running


async def scrape(port: int) -> dict[str, float]:
    """The supernode's /metrics on 127.0.0.1:port as {sample: value}."""
    return samples(await asyncio.to_thread(metrics_text, f"127.0.0.1:{port}"))
