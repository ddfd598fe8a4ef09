"""An open SyncPieces stream keeps its host registered without HeartbeatHost, and once the stream ends the
host's heartbeats are due again: a host that sends none is dropped; the heartbeat interval grows with the hosts held.
Real gRPC against an in-process supernode with a 100 ms heartbeat interval (3 missed: 0.3 s)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

from conftest import Running, make_config, started
from dandelion.common.v1 import common_pb2
from dandelion.scheduler.v1 import scheduler_pb2


async def hosts(running: Running) -> list[str]:
    return [h.host_id for h in (await running.scheduler.ListHosts(scheduler_pb2.ListHostsRequest())).hosts]


async def test_an_open_stream_keeps_its_host_and_its_end_lets_heartbeats_decide(tmp_path: Path) -> None:
    config = make_config(tmp_path / "data", seed_peer=False, heartbeat_interval_ms=100)
    async with started(config) as running:
        info = scheduler_pb2.HostInfo(hostname="h", ip="127.0.0.1", port=1, upload_slots=4)
        registered = await running.scheduler.RegisterHost(scheduler_pb2.RegisterHostRequest(host=info))
        quiet = await running.scheduler.RegisterHost(
            scheduler_pb2.RegisterHostRequest(host=scheduler_pb2.HostInfo(hostname="q", ip="127.0.0.1", port=2))
        )
        digest = "sha256:" + hashlib.sha256(b"x").hexdigest()
        meta = common_pb2.UrlMeta(url=f"http://127.0.0.1:9/v2/x/blobs/{digest}", digest=digest)
        reply = await running.scheduler.RegisterTask(
            scheduler_pb2.RegisterTaskRequest(host_id=registered.host_id, url_meta=meta)
        )
        outgoing: asyncio.Queue[scheduler_pb2.SyncPiecesRequest | None] = asyncio.Queue()
        outgoing.put_nowait(scheduler_pb2.SyncPiecesRequest(peer_id=reply.peer_id, window=4))

        async def requests() -> AsyncIterator[scheduler_pb2.SyncPiecesRequest]:
            while (message := await outgoing.get()) is not None:
                yield message

        call = running.scheduler.SyncPieces(requests())
        first = await call.read()
        assert isinstance(first, scheduler_pb2.SyncPiecesResponse)
        await asyncio.sleep(1.0)  # ten intervals, no HeartbeatHost from either host
        assert await hosts(running) == [registered.host_id]  # the host without a stream was dropped
        assert quiet.host_id not in await hosts(running)
        call.cancel()  # as a host that is killed: its connection and stream end
        for _ in range(100):  # dropped within 5 s
            if not await hosts(running):
                break
            await asyncio.sleep(0.05)
        assert await hosts(running) == []


async def test_the_heartbeat_interval_grows_with_the_hosts_held(tmp_path: Path) -> None:
    """At most HEARTBEATS_PER_SECOND heartbeats a second in all: 600 hosts at 500 a second beat every 1.2 s, not
    every 100 ms; told at registration and in every heartbeat's answer."""
    config = make_config(tmp_path / "data", seed_peer=False, heartbeat_interval_ms=100)
    async with started(config) as running:
        first = await running.scheduler.RegisterHost(
            scheduler_pb2.RegisterHostRequest(host=scheduler_pb2.HostInfo(hostname="h", ip="127.0.0.1", port=999))
        )
        replies = [first] + await asyncio.gather(
            *(
                running.scheduler.RegisterHost(
                    scheduler_pb2.RegisterHostRequest(
                        host=scheduler_pb2.HostInfo(hostname=f"h{i}", ip="127.0.0.1", port=1000 + i, upload_slots=1)
                    )
                )
                for i in range(598)
            )
        )
        replies.append(
            await running.scheduler.RegisterHost(
                scheduler_pb2.RegisterHostRequest(host=scheduler_pb2.HostInfo(hostname="z", ip="127.0.0.1", port=1))
            )
        )
        assert replies[0].heartbeat_interval_ms == 100  # one host: the configured interval
        assert replies[-1].heartbeat_interval_ms == 1200
        beat = await running.scheduler.HeartbeatHost(scheduler_pb2.HeartbeatHostRequest(host_id=replies[0].host_id))
        assert beat.heartbeat_interval_ms == 1200
        await asyncio.sleep(0.6)  # 6 configured intervals: nobody is dropped, the hosts have 3 x 1.2 s
        assert len(await hosts(running)) == 600
