"""A supernode at a limit (--max-peers-per-task, --max-hosts) refuses with RESOURCE_EXHAUSTED: the dfdaemon reads
the origin at once, saying why, and does not keep asking (real processes)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from fixtures.metrics import metrics_text, value
from fixtures.origin import OriginServer, start_origin, write_random_file
from fixtures.processes import ManagedProcess, ProcessGroup, console_script, free_port
from peer_procs import Daemon, dfget, start_daemon

SIZE = 3 * (4 << 20) + 99


@pytest.fixture
def origin(process_group: ProcessGroup, tmp_path: Path) -> OriginServer:
    root = tmp_path / "origin"
    write_random_file(root / "f.bin", SIZE, seed=21)
    return start_origin(process_group, root)


def start_supernode(group: ProcessGroup, workdir: Path, metrics: int, *limits: str) -> tuple[str, ManagedProcess]:
    port = free_port("127.0.0.1")
    argv = [console_script("supernode"), "--listen", f"127.0.0.1:{port}", "--data-dir", str(workdir / "sn")]
    argv += ["--no-seed-peer", "--heartbeat-interval", "500", "--metrics", f"127.0.0.1:{metrics}", *limits]
    proc = group.start("sn", argv)
    proc.wait_for_tcp("127.0.0.1", port, timeout=30)
    return f"127.0.0.1:{port}", proc


def refusals(metrics: int, resource: str) -> float:
    return value(metrics_text(f"127.0.0.1:{metrics}"), "dandelion_limit_refusals_total", resource=resource)


def fetch(origin: OriginServer, daemon: Daemon, out: Path) -> tuple[int, int]:
    """dfget through the daemon (bounded: a refusal must not hang it): (bytes from peers, bytes from origin)."""
    result = dfget(origin.url("f.bin"), "-o", str(out), "--daemon", daemon.endpoint, timeout=60)
    assert result.returncode == 0, result.stderr + daemon.proc.tail()
    assert out.read_bytes() == (origin.root / "f.bin").read_bytes()
    found = re.findall(r"done: \d+ bytes, (\d+) from peers, (\d+) from origin", daemon.proc.log())
    assert found, daemon.proc.tail()
    return int(found[-1][0]), int(found[-1][1])


def test_a_task_at_its_peer_limit_sends_the_next_dfdaemon_to_the_origin(
    process_group: ProcessGroup, origin: OriginServer, tmp_path: Path
) -> None:
    metrics = free_port("127.0.0.1")
    addr, _ = start_supernode(process_group, tmp_path, metrics, "--max-peers-per-task", "1")
    first = start_daemon(process_group, tmp_path, "a", "127.0.0.71", addr)
    second = start_daemon(process_group, tmp_path, "b", "127.0.0.72", addr)
    assert fetch(origin, first, tmp_path / "a.bin") == (0, SIZE)  # it read the origin for the swarm, and stays in it
    started = time.monotonic()
    assert fetch(origin, second, tmp_path / "b.bin") == (0, SIZE)
    assert time.monotonic() - started < 30
    log = second.proc.log()
    assert "going back to source: the supernode is at a limit" in log, second.proc.tail()
    assert "has 1 peers, the limit per task (--max-peers-per-task)" in log, second.proc.tail()
    assert refusals(metrics, "peers_per_task") == 1, "one refusal, no retries"


def test_a_dfdaemon_refused_as_a_host_reads_the_origin_and_does_not_hammer(
    process_group: ProcessGroup, origin: OriginServer, tmp_path: Path
) -> None:
    metrics = free_port("127.0.0.1")
    addr, _ = start_supernode(process_group, tmp_path, metrics, "--max-hosts", "1")
    first = start_daemon(process_group, tmp_path, "a", "127.0.0.73", addr)
    deadline = time.monotonic() + 20
    while "registered host=" not in first.proc.log():
        assert time.monotonic() < deadline, first.proc.tail()
        time.sleep(0.1)
    second = start_daemon(process_group, tmp_path, "b", "127.0.0.74", addr)
    assert fetch(origin, second, tmp_path / "b.bin") == (0, SIZE)
    log = second.proc.log()
    assert "going back to source: the supernode is at a limit" in log, second.proc.tail()
    assert "(--max-hosts)" in log, second.proc.tail()
    before = refusals(metrics, "hosts")
    time.sleep(3)  # six of the supernode's heartbeat intervals
    assert refusals(metrics, "hosts") - before <= 4, "the refused host asks again once a heartbeat at most"
    assert fetch(origin, first, tmp_path / "a.bin") == (0, SIZE), "the registered host still uses the swarm"
