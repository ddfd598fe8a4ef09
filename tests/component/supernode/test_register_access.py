"""The supernode asks the origin before RegisterTask grants (supernode.access): raw gRPC registrations against an
in-process supernode and a real origin on loopback that requires a token for /private and counts its HEADs (the
probes) apart from its GETs (the downloads)."""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from pathlib import Path

import grpc
import pytest
from conftest import Running, make_config, started
from dandelion.common.v1 import common_pb2
from dandelion.scheduler.v1 import scheduler_pb2
from origin_server import Origin
from prometheus_client import REGISTRY

TOKEN = "Bearer tok-5e1d-never-logged"
BODY = b"private layer " * 1000


def decisions(outcome: str) -> float:
    return REGISTRY.get_sample_value("dandelion_access_decisions_total", {"outcome": outcome}) or 0.0


@pytest.fixture
def private_origin(origin: Origin) -> Origin:
    origin.blobs["/private"] = BODY
    origin.auth["/private"] = TOKEN
    origin.blobs["/public"] = BODY
    return origin


async def register_host(node: Running, port: int, seed: bool = False) -> str:
    host = scheduler_pb2.HostInfo(hostname=f"h{port}", ip="127.0.0.1", port=port, upload_slots=4, seed=seed)
    reply = await node.scheduler.RegisterHost(scheduler_pb2.RegisterHostRequest(host=host))
    return str(reply.host_id)


async def register_task(
    node: Running, host_id: str, url: str, headers: dict[str, str] | None = None
) -> scheduler_pb2.RegisterTaskResponse:
    meta = common_pb2.UrlMeta(url=url, headers=headers or {})
    request = scheduler_pb2.RegisterTaskRequest(host_id=host_id, url_meta=meta)
    reply: scheduler_pb2.RegisterTaskResponse = await node.scheduler.RegisterTask(request, timeout=30)
    return reply


async def refused(node: Running, host_id: str, url: str, headers: dict[str, str] | None = None) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await register_task(node, host_id, url, headers)
    return caught.value


def assert_granted(reply: scheduler_pb2.RegisterTaskResponse, host_id: str) -> None:
    claims = common_pb2.GrantClaims.FromString(reply.grant.claims)
    assert (claims.task_id, claims.host_id) == (reply.task.task_id, host_id)
    assert reply.grant.signature and reply.peer_id


async def test_private_content_is_granted_only_with_credentials_the_origin_accepts(
    tmp_path: Path, private_origin: Origin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port = private_origin.server.server_address[1]
    url = f"{private_origin.base}/private"
    async with started(make_config(tmp_path / "data", seed_peer=False)) as node:
        host_id = await register_host(node, 1)
        before = decisions("refused")
        for headers in (None, {"Authorization": "Bearer wrong"}):
            error = await refused(node, host_id, f"http://user:pw@127.0.0.1:{port}/private?x=1", headers)
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED
            assert error.details() == f"access refused: origin answered HTTP 401 Unauthorized for {url}?x=1"
        assert decisions("refused") == before + 2
        assert not (await node.scheduler.ListTasks(scheduler_pb2.ListTasksRequest())).tasks, "refused: no task"
        assert_granted(await register_task(node, host_id, url, {"Authorization": TOKEN}), host_id)
    assert private_origin.hits["/private"] == 0, "a probe is a HEAD: no content was read"
    assert TOKEN not in caplog.text and "wrong" not in caplog.text and "pw@" not in caplog.text


async def test_public_content_is_asked_about_once_and_its_grants_cost_nothing_more(
    tmp_path: Path, private_origin: Origin
) -> None:
    async with started(make_config(tmp_path / "data", seed_peer=False)) as node:
        for port in range(1, 6):
            host_id = await register_host(node, port)
            assert_granted(await register_task(node, host_id, f"{private_origin.base}/public"), host_id)
        missing = await refused(node, host_id, f"{private_origin.base}/missing")
    assert private_origin.heads["/public"] == 1
    assert missing.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "HTTP 404" in (missing.details() or "")


@pytest.mark.parametrize("hosts", [1000])
async def test_concurrent_registrations_of_one_layer_ask_the_origin_once(
    tmp_path: Path, private_origin: Origin, hosts: int
) -> None:
    async with started(make_config(tmp_path / "data", seed_peer=False, max_hosts=2 * hosts)) as node:
        ids = await asyncio.gather(*(register_host(node, port) for port in range(1, hosts + 1)))
        began = time.monotonic()
        await asyncio.gather(*(register_task(node, h, f"{private_origin.base}/public") for h in ids))
        public_s = time.monotonic() - began
        began = time.monotonic()
        auth = {"Authorization": TOKEN}
        await asyncio.gather(*(register_task(node, h, f"{private_origin.base}/private", auth) for h in ids))
        private_s = time.monotonic() - began
    print(
        f"\n{hosts} concurrent registrations: public layer {private_origin.heads['/public']} origin request(s) "
        f"in {public_s:.2f}s; private layer, one token: {private_origin.heads['/private']} in {private_s:.2f}s"
    )
    assert private_origin.heads["/public"] == 1
    assert private_origin.heads["/private"] == 2  # the anonymous question (401: private), then the token's
    assert private_origin.hits["/public"] == private_origin.hits["/private"] == 0


async def test_when_the_origin_is_gone_public_content_is_granted_and_private_refused(
    tmp_path: Path, private_origin: Origin
) -> None:
    private_origin.keep_alive = False  # nothing answers once stopped
    async with started(make_config(tmp_path / "data", seed_peer=False)) as node:
        host_id = await register_host(node, 1)
        await register_task(node, host_id, f"{private_origin.base}/public")
        private_origin.stop()
        assert_granted(await register_task(node, host_id, f"{private_origin.base}/public"), host_id)
        error = await refused(node, host_id, f"{private_origin.base}/private", {"Authorization": TOKEN})
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert error.details() == (
        f"origin unreachable or not allowed: {private_origin.base}/private "
        "(the supernode cannot check access: read it from the origin)"
    )


async def test_seed_peers_are_not_asked_about(tmp_path: Path, private_origin: Origin) -> None:
    """A seed host's registration (here a raw one, and the in-process seed peer's on the supernode's order) needs
    no origin's word: seed peers read origins for the swarm."""
    url = f"{private_origin.base}/private"
    async with started(make_config(tmp_path / "data")) as node:
        seed_id = await register_host(node, 7, seed=True)
        exempt = decisions("exempt")
        assert_granted(await register_task(node, seed_id, f"{url}?raw=1"), seed_id)
        assert private_origin.heads["/private"] == 0
        # Gone before the next task, whose seed peer must be the in-process one (this one reads nothing).
        await node.scheduler.LeaveHost(scheduler_pb2.LeaveHostRequest(host_id=seed_id))
        host_id = await register_host(node, 1)
        reply = await register_task(node, host_id, url, {"Authorization": TOKEN})
        deadline = time.monotonic() + 20
        while private_origin.hits["/private"] == 0:  # the in-process seed peer reads it, with the order's headers
            assert time.monotonic() < deadline, "the seed peer never read the origin"
            await asyncio.sleep(0.05)
        assert_granted(reply, host_id)
    assert private_origin.heads["/private"] == 2  # the host's registration only: anonymous, then its token
    assert decisions("exempt") >= exempt + 2


async def test_without_the_check_any_registration_is_granted(tmp_path: Path, private_origin: Origin) -> None:
    async with started(make_config(tmp_path / "data", seed_peer=False, access_check=False)) as node:
        host_id = await register_host(node, 1)
        assert_granted(await register_task(node, host_id, f"{private_origin.base}/private"), host_id)
    assert private_origin.heads["/private"] == private_origin.hits["/private"] == 0


async def test_added_latency_of_register_task(tmp_path: Path, private_origin: Origin) -> None:
    """RegisterTask's time with the check: the first registration of a URL (the origin asked) against later ones
    (its answer remembered), and against a supernode without the check. Printed; bounded loosely."""

    async def timed(node: Running, url: str, headers: dict[str, str] | None, fresh_url: bool) -> list[float]:
        times = []
        for n in range(30):
            host_id = await register_host(node, 1000 + n)
            began = time.perf_counter()
            await register_task(node, host_id, f"{url}?n={n}" if fresh_url else url, headers)
            times.append((time.perf_counter() - began) * 1000)
        return times

    private_origin.blobs["/public"] = BODY
    auth = {"Authorization": TOKEN}
    rows = {}
    async with started(make_config(tmp_path / "off", seed_peer=False, access_check=False)) as node:
        rows["no check"] = await timed(node, f"{private_origin.base}/public", None, fresh_url=True)
    async with started(make_config(tmp_path / "on", seed_peer=False)) as node:
        rows["public, cold (1 HEAD)"] = await timed(node, f"{private_origin.base}/public", None, fresh_url=True)
        rows["public, marked"] = await timed(node, f"{private_origin.base}/public", None, fresh_url=False)
        rows["private, cold (2 HEADs)"] = await timed(node, f"{private_origin.base}/private", auth, fresh_url=True)
        rows["private, cached grant"] = await timed(node, f"{private_origin.base}/private", auth, fresh_url=False)
    print("\nRegisterTask latency, ms (median / p90 of 30, loopback origin):")
    for what, times in rows.items():
        print(f"  {what:26} {statistics.median(times):6.2f} / {sorted(times)[26]:6.2f}")
    assert statistics.median(rows["public, marked"]) < statistics.median(rows["public, cold (1 HEAD)"])
    assert statistics.median(rows["private, cold (2 HEADs)"]) < 100
