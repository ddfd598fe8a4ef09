"""The `supernode` command: help, one-line flag errors (exit 2), a real process serving and stopping on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

COMMAND = [shutil.which("supernode") or "supernode"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=60)


def test_help() -> None:
    done = run("--help")
    assert done.returncode == 0
    for flag in ("--listen", "--data-dir", "--advertise-ip", "--piece-size", "--log-level"):
        assert flag in done.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--data-dir", "d", "--bogus"],
        ["--listen", "127.0.0.1"],
        ["--data-dir", "d", "--listen", "127.0.0.1:99999"],
        ["--data-dir", "d", "--piece-size", "1KiB"],
        ["--data-dir", "d", "--piece-size", "lots"],
        ["--data-dir", "d", "--advertise-ip", "not-an-ip"],
        ["--data-dir", "d", "--log-level", "loud"],
        ["--data-dir", "d", "--parent-policy", "closest"],
        ["--data-dir", "d", "--location", "eu|" + "z" * 300],
    ],
)
def test_bad_flags_exit_2_with_one_line(args: list[str], tmp_path: Path) -> None:
    done = subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("supernode: error: ")
    assert not (tmp_path / "d").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_process_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    args = ["--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data"), "--advertise-ip", "127.0.0.1"]
    proc = subprocess.Popen([*COMMAND, *args, "--location", "eu|eu-1a"], stderr=subprocess.PIPE, text=True)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as chan:
            deadline = time.monotonic() + 30
            while True:  # the overall SERVING comes only once every service is SERVING
                try:
                    health = health_pb2_grpc.HealthStub(chan).Check(health_pb2.HealthCheckRequest(), timeout=2)
                    if health.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.RpcError:
                    pass
                assert proc.poll() is None, "supernode exited"
                assert time.monotonic() < deadline, "supernode did not become healthy"
                time.sleep(0.2)
            service = "dandelion.scheduler.v1.SchedulerService"
            reply = health_pb2_grpc.HealthStub(chan).Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            stub = scheduler_pb2_grpc.SchedulerServiceStub(chan)
            assert list(stub.ListTasks(scheduler_pb2.ListTasksRequest(), timeout=5).tasks) == []
            hosts = stub.ListHosts(scheduler_pb2.ListHostsRequest(), timeout=5).hosts
            # the in-process seed peer, registered where --location says it is
            assert [(h.seed, h.ip, h.port, h.location) for h in hosts] == [(True, "127.0.0.1", port, "eu|eu-1a")]
            garbage = chan.unary_unary("/dandelion.scheduler.v1.SchedulerService/RegisterTask", None, None)
            with pytest.raises(grpc.RpcError) as refused:
                garbage(b"\xff\xff\xff\xff", timeout=5)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
            assert list(stub.ListTasks(scheduler_pb2.ListTasksRequest(), timeout=5).tasks) == []
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "serving on 127.0.0.1" in err
        assert "stopped" in err
        assert "Traceback" not in err
        # the garbage request, reported on one line
        assert "malformed request to /dandelion.scheduler.v1.SchedulerService/RegisterTask" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()  # closes the stderr pipe too


def test_a_failed_start_says_why_and_leaves_no_socket_directory(tmp_path: Path) -> None:
    """The metrics port is taken: one line naming it, exit 1, and the in-process seed peer's private socket
    directory (created in TMPDIR before the metrics server starts) is removed again."""
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        metrics = f"127.0.0.1:{taken.getsockname()[1]}"
        args = ["--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data"), "--metrics", metrics]
        env = {**os.environ, "TMPDIR": str(private_tmp)}
        done = subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == f"supernode: error: cannot serve metrics on {metrics}: Address already in use", done.stderr
    assert "Traceback" not in done.stderr
    assert "in-process seed peer" in done.stderr  # it started: its socket directory existed
    assert list(private_tmp.iterdir()) == []


def test_module_entry_point() -> None:
    done = subprocess.run([sys.executable, "-m", "supernode", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0


def test_environment_log_level_and_json_format(tmp_path: Path) -> None:
    """DANDELION_LOG_LEVEL/FORMAT (compose.yaml's variables) reach the process: at warning the start line is
    gone, the malformed request's warning comes as a JSON line with a UTC offset; never grpc's per-call flood, nor
    the C core's own INFO lines (a GOAWAY at shutdown once broke the JSON here; GRPC_TRACE makes them certain)."""
    port = free_port()
    args = ["--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data")]
    env = {**os.environ, "DANDELION_LOG_LEVEL": "warning", "DANDELION_LOG_FORMAT": "json", "GRPC_TRACE": "api"}
    env.pop("GRPC_VERBOSITY", None)
    proc = subprocess.Popen([*COMMAND, *args], stderr=subprocess.PIPE, text=True, env=env)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as chan:
            stub = scheduler_pb2_grpc.SchedulerServiceStub(chan)
            deadline = time.monotonic() + 30
            while True:
                try:
                    stub.ListTasks(scheduler_pb2.ListTasksRequest(), timeout=2)
                    break
                except grpc.RpcError:
                    assert proc.poll() is None and time.monotonic() < deadline, "supernode did not serve"
                    time.sleep(0.2)
            garbage = chan.unary_unary("/dandelion.scheduler.v1.SchedulerService/RegisterTask", None, None)
            with pytest.raises(grpc.RpcError):
                garbage(b"\xff\xff\xff\xff", timeout=5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    entries = [json.loads(line) for line in err.splitlines()]
    assert [e["level"] for e in entries] == ["warning"], err
    assert entries[0]["message"].startswith("malformed request to /dandelion.scheduler.v1.SchedulerService/")
    assert re.search(r"T\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$", entries[0]["time"])
    assert entries[0]["component"] == "supernode"
