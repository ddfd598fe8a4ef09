"""While a download's SyncPieces stream is open, the dfdaemon's heartbeats ride on it instead of HeartbeatHost
calls (real processes: a supernode, an origin, a dfdaemon, dfget). A stalled supernode is still noticed through
them: test_peer_reregistration.py's SIGSTOP of a running download's supernode."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from fixtures.origin import start_origin, write_random_file
from fixtures.processes import ProcessGroup, console_script, free_port
from peer_procs import start_daemon

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("supernode.__main__") is None, reason="the supernode has no entry point yet"
)

SIZE = 24 * (1 << 20)
INTERVAL_MS = 300


def heartbeats(metrics_port: int) -> dict[str, float]:
    """dandelion_heartbeats_total by how they came ("call", "stream")."""
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    out = {"call": 0.0, "stream": 0.0}
    for line in text.splitlines():
        if line.startswith("dandelion_heartbeats_total{"):
            via = line.split('via="', 1)[1].split('"', 1)[0]
            out[via] = float(line.rsplit(" ", 1)[1])
    return out


def test_a_downloading_host_beats_on_its_stream(process_group: ProcessGroup, tmp_path: Path) -> None:
    """No seed peer: the dfdaemon reads the 8 MiB/s origin for the swarm (content with a digest) over some 3 s with
    its stream open; in that time every one of its heartbeats (one every 300 ms) comes on the stream, none as a
    call, and the download is correct."""
    port, metrics_port = free_port("127.0.0.1"), free_port("127.0.0.1")
    supernode = process_group.start(
        "sn",
        [
            console_script("supernode"),
            *("--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "sn"), "--advertise-ip", "127.0.0.1"),
            *("--no-seed-peer", "--heartbeat-interval", str(INTERVAL_MS), "--metrics", f"127.0.0.1:{metrics_port}"),
        ],
    )
    supernode.wait_for_tcp("127.0.0.1", port, timeout=30)
    write_random_file(tmp_path / "origin" / "f.bin", SIZE, seed=5)
    origin = start_origin(process_group, tmp_path / "origin", rate=8 << 20)
    daemon = start_daemon(process_group, tmp_path, "peer", "127.0.0.71", f"127.0.0.1:{port}")
    out = tmp_path / "out.bin"
    digest = "sha256:" + hashlib.sha256((tmp_path / "origin" / "f.bin").read_bytes()).hexdigest()
    argv = [console_script("dfget"), origin.url("f.bin"), "-o", str(out), "--daemon", daemon.endpoint]
    argv += ["--digest", digest]
    dfget = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        daemon.proc.wait_until(lambda: "reading the origin for the swarm" in daemon.proc.log(), "the origin read", 30)
        time.sleep(INTERVAL_MS / 1000)  # the stream has had the supernode's first answer: it carries heartbeats
        before = heartbeats(metrics_port)
        time.sleep(1.5)  # 5 intervals, well within the download
        after = heartbeats(metrics_port)
        _, stderr = dfget.communicate(timeout=60)
    finally:
        if dfget.poll() is None:
            dfget.kill()
            dfget.wait()
    assert dfget.returncode == 0, stderr + daemon.proc.tail(40)
    assert out.read_bytes() == (origin.root / "f.bin").read_bytes()
    assert after["stream"] - before["stream"] >= 3, (before, after)
    assert after["call"] == before["call"], (before, after)
