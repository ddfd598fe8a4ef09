"""Heartbeats carried on SyncPieces streams, over real gRPC against an in-process supernode: a host that beats on
its stream and never calls HeartbeatHost stays, each beat answered with the interval; a host whose stream is open
but silent is dropped all the same (an open stream is no sign of life), its stream ended without an error logged;
the beats show on /metrics."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from conftest import Running, make_config, started
from dandelion.common.v1 import common_pb2
from dandelion.scheduler.v1 import scheduler_pb2
from fixtures.metrics import metrics_text, value

INTERVAL_MS = 200  # hosts missing 3 intervals (0.6 s) are dropped


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def stream_beats(port: int) -> float:
    """dandelion_heartbeats_total{via="stream"} on the supernode's /metrics (0 before the first)."""
    return value(await asyncio.to_thread(metrics_text, f"127.0.0.1:{port}"), "dandelion_heartbeats_total", via="stream")


class Stream:
    """A peer's SyncPieces stream: send() messages; every message the supernode sends lands in received."""

    def __init__(self, running: Running, peer_id: str) -> None:
        self.outgoing: asyncio.Queue[scheduler_pb2.SyncPiecesRequest | None] = asyncio.Queue()
        self.outgoing.put_nowait(scheduler_pb2.SyncPiecesRequest(peer_id=peer_id, window=4))
        self.call = running.scheduler.SyncPieces(self._requests())
        self.received: list[scheduler_pb2.SyncPiecesResponse] = []
        self.error: grpc.aio.AioRpcError | None = None
        self.reader = asyncio.create_task(self._read())

    async def _requests(self) -> AsyncIterator[scheduler_pb2.SyncPiecesRequest]:
        while (message := await self.outgoing.get()) is not None:
            yield message

    async def _read(self) -> None:
        try:
            async for message in self.call:
                self.received.append(message)
        except grpc.aio.AioRpcError as err:
            self.error = err

    def send(self, message: scheduler_pb2.SyncPiecesRequest) -> None:
        self.outgoing.put_nowait(message)

    async def close(self) -> None:
        self.outgoing.put_nowait(None)
        self.call.cancel()
        await asyncio.gather(self.reader, return_exceptions=True)


async def test_a_host_beating_on_its_stream_stays_and_a_silent_stream_does_not_keep_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics_port = free_port()
    config = make_config(  # simulated hosts of content no origin serves: no access check
        tmp_path / "data",
        seed_peer=False,
        heartbeat_interval_ms=INTERVAL_MS,
        metrics=f"127.0.0.1:{metrics_port}",
        access_check=False,
    )
    digest = "sha256:" + hashlib.sha256(b"stream heartbeats").hexdigest()
    meta = common_pb2.UrlMeta(url=f"http://127.0.0.1:9/v2/img/blobs/{digest}", digest=digest)
    async with started(config) as running:
        before = await stream_beats(metrics_port)
        streams: dict[str, Stream] = {}
        for name, port in (("beating", 2001), ("silent", 2002)):
            info = scheduler_pb2.HostInfo(hostname=name, ip="127.0.0.1", port=port, upload_slots=4)
            registered = await running.scheduler.RegisterHost(scheduler_pb2.RegisterHostRequest(host=info))
            assert registered.stream_heartbeats  # this supernode takes heartbeats on streams
            request = scheduler_pb2.RegisterTaskRequest(host_id=registered.host_id, url_meta=meta)
            peer_id = (await running.scheduler.RegisterTask(request)).peer_id
            streams[registered.host_id] = Stream(running, peer_id)
        beating_host, silent_host = list(streams)
        beating = streams[beating_host]
        try:
            for _ in range(15):  # 1.5 s, 7 intervals: no HeartbeatHost call from either host
                beating.send(scheduler_pb2.SyncPiecesRequest(heartbeat=True))
                await asyncio.sleep(INTERVAL_MS / 2000)
            listed = await running.scheduler.ListHosts(scheduler_pb2.ListHostsRequest())
            assert {h.host_id for h in listed.hosts} == {beating_host}
            answers = [m.heartbeat_interval_ms for m in beating.received if m.heartbeat_interval_ms]
            assert len(answers) >= 13 and set(answers) == {INTERVAL_MS}
            assert beating.error is None
            await asyncio.wait_for(streams[silent_host].reader, 5)
            silent_error = streams[silent_host].error
            assert silent_error is not None and silent_error.code() == grpc.StatusCode.NOT_FOUND
            assert "missed its heartbeats" in (silent_error.details() or "")
            assert await stream_beats(metrics_port) - before >= 13
            # Ending the dropped host's stream is no failure of its request stream (no traceback logged).
            assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
        finally:
            for stream in streams.values():
                await stream.close()
