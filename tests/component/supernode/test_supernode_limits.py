"""--max-tasks, --max-peers-per-task and --max-hosts over real gRPC: a new task first makes room by forgetting the
oldest idle task; beyond a limit the RPC answers RESOURCE_EXHAUSTED with one line naming the limit and its flag; the
limits, refusals and evictions show on /metrics."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import grpc
import pytest
from conftest import Running, make_config, scrape, started
from dandelion.common.v1 import common_pb2
from dandelion.scheduler.v1 import scheduler_pb2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def meta(n: int) -> common_pb2.UrlMeta:
    """Content n, with a digest, at an origin nobody reads in these tests (the supernodes check no access)."""
    digest = "sha256:" + hashlib.sha256(b"%d" % n).hexdigest()
    return common_pb2.UrlMeta(url=f"http://127.0.0.1:9/v2/img/blobs/{digest}", digest=digest)


async def host(running: Running, port: int) -> str:
    info = scheduler_pb2.HostInfo(hostname=f"h{port}", ip="127.0.0.1", port=port, upload_slots=4)
    return str((await running.scheduler.RegisterHost(scheduler_pb2.RegisterHostRequest(host=info))).host_id)


async def register(running: Running, host_id: str, n: int) -> scheduler_pb2.RegisterTaskResponse:
    request = scheduler_pb2.RegisterTaskRequest(host_id=host_id, url_meta=meta(n))
    return await running.scheduler.RegisterTask(request)


async def leave(running: Running, peer_id: str) -> None:
    await running.scheduler.LeaveTask(scheduler_pb2.LeaveTaskRequest(peer_id=peer_id))


async def task_ids(running: Running) -> set[str]:
    return {t.task_id for t in (await running.scheduler.ListTasks(scheduler_pb2.ListTasksRequest())).tasks}


async def test_max_tasks_forgets_the_oldest_idle_task_then_refuses(tmp_path: Path) -> None:
    metrics_port = free_port()
    async with started(
        make_config(
            tmp_path / "data", seed_peer=False, metrics=f"127.0.0.1:{metrics_port}", max_tasks=3, access_check=False
        )
    ) as running:
        before = await scrape(metrics_port)
        assert before['dandelion_limit{component="supernode",resource="tasks"}'] == 3
        assert before['dandelion_limit{component="supernode",resource="peers_per_task"}'] == 10_000
        assert before['dandelion_limit{component="supernode",resource="hosts"}'] == 10_000
        host_id = await host(running, 65000)
        a, b, c = [await register(running, host_id, n) for n in range(3)]
        await leave(running, a.peer_id)  # idle first
        await leave(running, b.peer_id)
        d = await register(running, host_id, 3)
        assert await task_ids(running) == {b.task.task_id, c.task.task_id, d.task.task_id}, "the oldest idle went"
        e = await register(running, host_id, 4)
        assert await task_ids(running) == {c.task.task_id, d.task.task_id, e.task.task_id}
        again = await register(running, host_id, 2)  # a known task needs no room
        assert again.task.task_id == c.task.task_id

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await register(running, host_id, 5)  # every task has a peer in it
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        message = refused.value.details() or ""
        assert "3 tasks" in message and "(--max-tasks)" in message and "\n" not in message, message
        assert await task_ids(running) == {c.task.task_id, d.task.task_id, e.task.task_id}

        after = await scrape(metrics_port)
        key = '{component="supernode",resource="tasks"}'
        assert (
            after[f"dandelion_limit_refusals_total{key}"] - before.get(f"dandelion_limit_refusals_total{key}", 0) == 1
        )
        assert (
            after[f"dandelion_limit_evictions_total{key}"] - before.get(f"dandelion_limit_evictions_total{key}", 0) == 2
        )
        assert after['dandelion_active_tasks{component="supernode"}'] == 3

        await leave(running, d.peer_id)  # room again: d is idle
        f = await register(running, host_id, 5)
        assert await task_ids(running) == {c.task.task_id, e.task.task_id, f.task.task_id}


async def test_max_peers_per_task_refuses_the_next_peer_until_one_leaves(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics_port = free_port()
    async with started(
        make_config(
            tmp_path / "data",
            seed_peer=False,
            metrics=f"127.0.0.1:{metrics_port}",
            max_peers_per_task=2,
            access_check=False,
        )
    ) as running:
        before = await scrape(metrics_port)
        hosts = [await host(running, port) for port in (65001, 65002, 65003)]
        first = await register(running, hosts[0], 7)
        await register(running, hosts[1], 7)
        assert (await register(running, hosts[2], 8)).peer_id, "another task has room"
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await register(running, hosts[2], 7)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        message = refused.value.details() or ""
        assert f"task {first.task.task_id[:12]} has 2 peers" in message, message
        assert "(--max-peers-per-task)" in message and "\n" not in message, message
        assert f"registration refused, RESOURCE_EXHAUSTED: {message}" in caplog.text, "the operator is told"
        got = await running.scheduler.GetTask(scheduler_pb2.GetTaskRequest(task_id=first.task.task_id))
        assert len(got.peers) == 2, "the refused registration left nothing behind"

        key = 'dandelion_limit_refusals_total{component="supernode",resource="peers_per_task"}'
        assert (await scrape(metrics_port))[key] - before.get(key, 0) == 1
        await leave(running, first.peer_id)
        assert (await register(running, hosts[2], 7)).task.task_id == first.task.task_id


async def test_max_hosts_refuses_a_new_host_not_one_registering_again(tmp_path: Path) -> None:
    metrics_port = free_port()
    async with started(
        make_config(tmp_path / "data", seed_peer=False, metrics=f"127.0.0.1:{metrics_port}", max_hosts=2)
    ) as running:
        before = await scrape(metrics_port)
        await host(running, 65001)
        second = await host(running, 65002)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await host(running, 65003)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        message = refused.value.details() or ""
        assert "2 hosts" in message and "(--max-hosts)" in message and "\n" not in message, message
        assert await host(running, 65001), "a host registering again at its address takes its old place"
        listed = (await running.scheduler.ListHosts(scheduler_pb2.ListHostsRequest())).hosts
        assert sorted(h.port for h in listed) == [65001, 65002]

        metrics = await scrape(metrics_port)
        key = 'dandelion_limit_refusals_total{component="supernode",resource="hosts"}'
        assert metrics[key] - before.get(key, 0) == 1
        assert metrics['dandelion_active_hosts{component="supernode"}'] == 2
        await running.scheduler.LeaveHost(scheduler_pb2.LeaveHostRequest(host_id=second))
        assert await host(running, 65003)


async def test_the_in_process_seed_peer_counts_as_a_host_but_is_never_refused(tmp_path: Path) -> None:
    async with started(make_config(tmp_path / "data", max_hosts=1, max_peers_per_task=1)) as running:
        listed = (await running.scheduler.ListHosts(scheduler_pb2.ListHostsRequest())).hosts
        assert [h.seed for h in listed] == [True]
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await host(running, 65001)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
