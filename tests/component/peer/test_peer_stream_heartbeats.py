"""While a download's SyncPieces stream is open, the dfdaemon's heartbeats ride on it instead of HeartbeatHost
calls (real processes: a supernode, an origin, a dfdaemon, dfget); a dfdaemon told to beat seldom while it had no
peer there beats on the stream as soon as a download opens one. A stalled supernode is still noticed through
them: test_peer_reregistration.py's SIGSTOP of a running download's supernode."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import time
from pathlib import Path

import pytest
from fixtures.metrics import metrics_text, value
from fixtures.origin import OriginServer, start_origin, write_random_file
from fixtures.processes import ProcessGroup, console_script, free_port
from peer_procs import Daemon, start_daemon

from supernode.hosts import IDLE_FACTOR

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("supernode.__main__") is None, reason="the supernode has no entry point yet"
)

SIZE = 24 * (1 << 20)
INTERVAL_MS = 300


def heartbeats(metrics_port: int) -> dict[str, float]:
    """dandelion_heartbeats_total by how they came ("call", "stream")."""
    text = metrics_text(f"127.0.0.1:{metrics_port}")
    return {via: value(text, "dandelion_heartbeats_total", via=via) for via in ("call", "stream")}


class Swarm:
    """A supernode at INTERVAL_MS heartbeats (metrics on), an 8 MiB/s origin with one file, a dfdaemon."""

    def __init__(self, group: ProcessGroup, tmp_path: Path, interval_ms: int) -> None:
        port, self.metrics_port = free_port("127.0.0.1"), free_port("127.0.0.1")
        supernode = group.start(
            "sn",
            [
                console_script("supernode"),
                *("--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "sn"), "--advertise-ip", "127.0.0.1"),
                *("--no-seed-peer", "--heartbeat-interval", str(interval_ms)),
                *("--metrics", f"127.0.0.1:{self.metrics_port}"),
            ],
        )
        supernode.wait_for_tcp("127.0.0.1", port, timeout=30)
        write_random_file(tmp_path / "origin" / "f.bin", SIZE, seed=5)
        self.origin: OriginServer = start_origin(group, tmp_path / "origin", rate=8 << 20)
        self.daemon: Daemon = start_daemon(group, tmp_path, "peer", "127.0.0.71", f"127.0.0.1:{port}")
        self.out = tmp_path / "out.bin"
        self.digest = "sha256:" + hashlib.sha256((tmp_path / "origin" / "f.bin").read_bytes()).hexdigest()

    def heartbeats(self) -> dict[str, float]:
        return heartbeats(self.metrics_port)

    def dfget(self) -> subprocess.Popen[str]:
        argv = [console_script("dfget"), self.origin.url("f.bin"), "-o", str(self.out)]
        argv += ["--daemon", self.daemon.endpoint, "--digest", self.digest]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_for_the_origin_read(self) -> None:
        log = self.daemon.proc.log
        self.daemon.proc.wait_until(lambda: "reading the origin for the swarm" in log(), "the origin read", 30)

    def finish(self, dfget: subprocess.Popen[str]) -> None:
        """dfget ends well with the file."""
        try:
            _, stderr = dfget.communicate(timeout=60)
        finally:
            if dfget.poll() is None:
                dfget.kill()
                dfget.wait()
        assert dfget.returncode == 0, stderr + self.daemon.proc.tail(40)
        assert self.out.read_bytes() == (self.origin.root / "f.bin").read_bytes()


def test_a_downloading_host_beats_on_its_stream(process_group: ProcessGroup, tmp_path: Path) -> None:
    """No seed peer: the dfdaemon reads the 8 MiB/s origin for the swarm (content with a digest) over some 3 s with
    its stream open; in that time every one of its heartbeats (one every 300 ms) comes on the stream, none as a
    call, and the download is correct."""
    swarm = Swarm(process_group, tmp_path, INTERVAL_MS)
    dfget = swarm.dfget()
    try:
        swarm.wait_for_the_origin_read()
        time.sleep(INTERVAL_MS / 1000)  # the stream has had the supernode's first answer: it carries heartbeats
        before = swarm.heartbeats()
        time.sleep(1.5)  # 5 intervals, well within the download
        after = swarm.heartbeats()
    finally:
        swarm.finish(dfget)
    assert after["stream"] - before["stream"] >= 3, (before, after)
    assert after["call"] == before["call"], (before, after)


def test_an_idle_host_beats_on_its_stream_at_once(process_group: ProcessGroup, tmp_path: Path) -> None:
    """A 1 s interval: the idle dfdaemon's heartbeat call is answered with IDLE_FACTOR s. A download right after
    that opens a stream, and the dfdaemon beats on it at once (then every second) rather than some 6 s later."""
    swarm = Swarm(process_group, tmp_path, 1000)
    deadline = time.monotonic() + 10
    while swarm.heartbeats()["call"] < 1:  # told the idle interval now
        assert time.monotonic() < deadline, "no heartbeat call within 10 s"
        time.sleep(0.05)
    dfget = swarm.dfget()
    try:
        swarm.wait_for_the_origin_read()
        time.sleep(1.5)
        beats = swarm.heartbeats()
    finally:
        swarm.finish(dfget)
    assert IDLE_FACTOR * 1.0 > 3  # without the beat at once, the next would come after the download's first 3 s
    assert beats["stream"] >= 1 and beats["call"] == 1, beats
