"""The heartbeat interval a supernode hands out grows with the hosts it holds (at most HEARTBEATS_PER_SECOND in
all), told at registration and in every heartbeat's answer; a host with no peer there is told IDLE_FACTOR times
that. Real gRPC against an in-process supernode."""

from __future__ import annotations

import asyncio
from pathlib import Path

from conftest import Running, make_config, started
from dandelion.scheduler.v1 import scheduler_pb2

from supernode.hosts import IDLE_FACTOR


async def hosts(running: Running) -> list[str]:
    return [h.host_id for h in (await running.scheduler.ListHosts(scheduler_pb2.ListHostsRequest())).hosts]


async def test_the_heartbeat_interval_grows_with_the_hosts_held(tmp_path: Path) -> None:
    """At most HEARTBEATS_PER_SECOND heartbeats a second in all: 600 hosts at 500 a second beat every 1.2 s, not
    every 100 ms; told at registration, and in every heartbeat's answer times IDLE_FACTOR (these hosts have no peer
    there)."""
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
        assert beat.heartbeat_interval_ms == IDLE_FACTOR * 1200
        await asyncio.sleep(0.6)  # 6 configured intervals: nobody is dropped, the hosts have 3 x 1.2 s
        assert len(await hosts(running)) == 600
