"""A registration whose answer never reached its host (the call timed out, or its connection broke, after the
supernode took it): the real supernode, over gRPC, with its own timers. The peer it made was the task's reader; the
peers that did open their streams are not left waiting for its pieces."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest
from conftest import make_config, started
from dandelion.scheduler.v1 import scheduler_pb2
from origin_server import Origin
from test_supernode_swarm import PeerStream, register_host, register_task

from supernode import streamless


async def test_the_reader_of_a_lost_registration_is_replaced_by_a_peer_with_a_stream(
    tmp_path: Path, origin: Origin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streamless, "READER_STREAMLESS_S", 0.5)
    body = os.urandom(3 * (64 << 10))
    origin.blobs["/layer"] = body
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    config = make_config(tmp_path / "d", seed_peer=False, heartbeat_interval_ms=200)
    async with started(config) as node:
        lost_host = await register_host(node, ip="127.0.0.2", port=2)
        lost = await register_task(node, lost_host, f"{origin.base}/layer", digest=digest)  # no stream follows
        host_id = await register_host(node, ip="127.0.0.3", port=3)

        async def alive() -> None:  # both hosts heart-beat on, as dfdaemons do
            while True:
                for beating_host in (lost_host, host_id):
                    await node.scheduler.HeartbeatHost(scheduler_pb2.HeartbeatHostRequest(host_id=beating_host))
                await asyncio.sleep(0.05)

        beating = asyncio.create_task(alive())
        reply = await register_task(node, host_id, f"{origin.base}/layer", digest=digest)
        stream = PeerStream(node, reply.peer_id)
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            told = await asyncio.wait_for(told_to_read(stream), 10)
        finally:
            stream.close()
            stream.call.cancel()
            beating.cancel()
        waited = loop.time() - began
        assert told.offer_pieces and told.reason == "this peer reads the origin for the swarm"
        assert 0.5 <= waited < 5, f"told after {waited:.1f}s"
        swarm = node.node.swarm
        assert swarm is not None
        assert swarm.scheduler.tasks[reply.task.task_id].source_peer_id == reply.peer_id
        assert lost.peer_id in swarm.scheduler.peers, "a plain peer until PEER_UNOPENED_S"


async def told_to_read(stream: PeerStream) -> scheduler_pb2.BackToSource:
    """The first back_to_source event on the stream."""
    async for message in stream.call:
        if message.WhichOneof("event") == "back_to_source":
            return message.back_to_source
    raise AssertionError("the stream ended before this peer was told to read")
