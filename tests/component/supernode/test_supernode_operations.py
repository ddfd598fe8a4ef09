"""Operating the supernode: hosts behind 0.0.0.0, config file + environment, Prometheus /metrics."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from conftest import Running
from dandelion.common.v1 import common_pb2
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from fixtures.metrics import metrics_text, samples
from origin_server import Origin

COMMAND = [shutil.which("supernode") or "supernode"]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unspecified_host_ip_becomes_the_callers_address(supernode: Running) -> None:
    host = scheduler_pb2.HostInfo(hostname="in-a-container", ip="0.0.0.0", port=65000, upload_slots=4)
    reply = await supernode.scheduler.RegisterHost(scheduler_pb2.RegisterHostRequest(host=host))
    hosts = await supernode.scheduler.ListHosts(scheduler_pb2.ListHostsRequest())
    registered = {h.host_id: h for h in hosts.hosts}[reply.host_id]
    assert (registered.ip, registered.port) == ("127.0.0.1", 65000)


async def test_bad_host_ip_is_invalid_argument(supernode: Running) -> None:
    host = scheduler_pb2.HostInfo(hostname="h", ip="not-an-ip", port=65000)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await supernode.scheduler.RegisterHost(scheduler_pb2.RegisterHostRequest(host=host))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_location_the_flags_would_refuse_is_invalid_argument(supernode: Running) -> None:
    """The same bound as dfdaemon and supernode --location check at start-up (dfcommon.location)."""
    longest = scheduler_pb2.HostInfo(hostname="h", ip="127.0.0.1", port=65000, location="r|" + "z" * 254)
    await supernode.scheduler.RegisterHost(scheduler_pb2.RegisterHostRequest(host=longest))
    host = scheduler_pb2.HostInfo(hostname="h", ip="127.0.0.1", port=65001, location="r|" + "z" * 255)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await supernode.scheduler.RegisterHost(scheduler_pb2.RegisterHostRequest(host=host))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == "location must be at most 256 characters"


def wait_healthy_port(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    with grpc.insecure_channel(f"127.0.0.1:{port}") as chan:
        while True:
            try:
                scheduler_pb2_grpc.SchedulerServiceStub(chan).ListTasks(scheduler_pb2.ListTasksRequest(), timeout=2)
                return
            except grpc.RpcError:
                assert proc.poll() is None, "supernode exited"
                assert time.monotonic() < deadline, "supernode did not come up"
                time.sleep(0.2)


def test_config_file_environment_and_metrics(tmp_path: Path, origin: Origin) -> None:
    port, metrics_port = free_port(), free_port()
    config = tmp_path / "supernode.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{port}\ndata-dir: {tmp_path / 'data'}\nadvertise_ip: 127.0.0.1\npiece-size: 128KiB\n"
        "log-level: warning\n"
    )
    body = os.urandom(3 * (1 << 20) + 5)
    origin.blobs["/metered"] = body
    env = {**os.environ, "SUPERNODE_LOG_LEVEL": "info", "SUPERNODE_METRICS": f"127.0.0.1:{metrics_port}"}
    proc = subprocess.Popen([*COMMAND, "--config", str(config)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_healthy_port(port, proc)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as chan:
            stub = scheduler_pb2_grpc.SchedulerServiceStub(chan)
            meta = common_pb2.UrlMeta(url=f"{origin.base}/metered")
            task = stub.PreheatTask(scheduler_pb2.PreheatTaskRequest(url_meta=meta), timeout=30).task
        assert task.piece_size == 128 << 10  # from the file (the default base cuts this content in 512 KiB)
        assert task.piece_count == 25
        text = metrics_text(f"127.0.0.1:{metrics_port}")
        metrics = samples(text)
        # Read by the in-process seed peer (the peer package): the supernode's origin bytes all the same.
        assert metrics['dandelion_origin_bytes_total{component="supernode"}'] == len(body)
        assert metrics['dandelion_active_tasks{component="supernode"}'] == 1
        assert "dandelion_piece_reports_total" in text
        assert metrics['dandelion_seed_peers{component="supernode"}'] == 1  # the in-process seed peer
        assert metrics['dandelion_seed_orders_total{component="supernode"}'] == 1
        ours = [line for line in text.splitlines() if line.startswith("dandelion_")]
        assert all('component="supernode"' in line for line in ours), ours
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "supernode serving on 127.0.0.1" in err  # info: the environment beat the file's warning


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data-dir: /tmp/x\nbogus: 1\n", "unknown option 'bogus'"),
        ("data-dir: /tmp/x\norigin-ca: /nonexistent.pem\n", "--origin-ca '/nonexistent.pem' is not a readable file"),
        ("data-dir: [1, 2]\n", "data-dir takes a single value"),
    ],
)
def test_bad_config_file_is_one_line_exit_2(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    done = subprocess.run([*COMMAND, "--config", str(config)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert message in done.stderr
