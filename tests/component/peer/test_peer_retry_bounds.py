"""Every wait has an end, with real processes: a seed nobody can reach or a wedged one costs a bounded number of
calls and the download falls back to the origin; dfget's --timeout and signals end it and leave no temp file."""

from __future__ import annotations

import importlib.util
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fault_procs import leftovers, start_supernode
from fixtures.origin import OriginServer, start_origin, write_random_file
from fixtures.processes import ProcessGroup, console_script
from peer_procs import Daemon, dfget, start_daemon

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("supernode.__main__") is None, reason="the supernode has no entry point yet"
)

MIB = 1 << 20
SIZE = 6 * MIB + 11
SLOW_SIZE = 24 * MIB
BUSY_PARENT = Path(__file__).resolve().parents[2] / "fixtures" / "busy_parent.py"


@pytest.fixture(scope="module")
def origin_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("origin")
    for index in range(4):
        write_random_file(root / f"f{index}.bin", SIZE, seed=60 + index)
        write_random_file(root / f"slow{index}.bin", SLOW_SIZE, seed=70 + index)
    return root


def timed(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    began = time.monotonic()
    result = dfget(*args, timeout=120)
    return result, time.monotonic() - began


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_seed_on_an_unreachable_address_falls_back_to_the_origin(
    process_group: ProcessGroup, origin_root: Path, tmp_path: Path
) -> None:
    origin = start_origin(process_group, origin_root)
    # The seed is advertised where nothing listens: every child's DownloadPieces call is refused.
    supernode, _ = start_supernode(process_group, tmp_path, "sn", "--advertise-ip", "127.0.0.99")
    daemon = start_daemon(process_group, tmp_path, "peer", "127.0.0.73", supernode)
    out = tmp_path / "f0.bin"
    result, elapsed = timed(origin.url("f0.bin"), "-o", str(out), "--daemon", daemon.endpoint)
    assert result.returncode == 0, result.stderr + daemon.proc.tail()
    assert out.read_bytes() == (origin.root / "f0.bin").read_bytes()
    assert elapsed < 20, f"{elapsed:.1f}s"
    log = daemon.proc.log()
    assert "going back to source" in log
    refused = log.count("at 127.0.0.99:")
    assert 1 <= refused <= 10, refused  # was 25,571 in 10 minutes

    result, elapsed = timed(
        origin.url("f1.bin"), "-o", str(tmp_path / "f1.bin"), "--daemon", daemon.endpoint, "--no-back-source"
    )
    assert result.returncode != 0
    assert "back-to-source is off" in one_line(result)
    assert elapsed < 20, f"{elapsed:.1f}s"
    assert leftovers(tmp_path) == [] and not (tmp_path / "f1.bin").exists()


def test_wedged_seed_is_asked_with_backoff_then_the_origin_serves(
    process_group: ProcessGroup, origin_root: Path, tmp_path: Path
) -> None:
    origin = start_origin(process_group, origin_root)
    supernode, _ = start_supernode(process_group, tmp_path, "sn", "--advertise-ip", "127.0.0.98")
    port = supernode.rsplit(":", 1)[1]
    busy = process_group.start("busy", [sys.executable, str(BUSY_PARENT), "--listen", f"127.0.0.98:{port}"])
    busy.wait_for_tcp("127.0.0.98", int(port))
    daemon = start_daemon(process_group, tmp_path, "peer", "127.0.0.74", supernode)
    out = tmp_path / "f2.bin"
    result, elapsed = timed(origin.url("f2.bin"), "-o", str(out), "--daemon", daemon.endpoint)
    assert result.returncode == 0, result.stderr + daemon.proc.tail()
    assert out.read_bytes() == (origin.root / "f2.bin").read_bytes()
    # The supernode sends the peer back to source once a piece failed 8 times (before the peer's own 30 s stall).
    assert elapsed < 30, f"{elapsed:.1f}s"
    calls = busy.log().count(" -> RESOURCE_EXHAUSTED")
    assert 1 <= calls <= 30, calls  # was about 23,000 a minute
    assert "going back to source: supernode sent back-to-source: its piece fetches keep failing" in daemon.proc.log()


@pytest.fixture(scope="module")
def slow_swarm(
    module_process_group: ProcessGroup, origin_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[OriginServer, Daemon]:
    work = tmp_path_factory.mktemp("slow")
    origin = start_origin(module_process_group, origin_root, rate=2 * MIB)  # a slow file takes 12 s
    supernode, _ = start_supernode(module_process_group, work, "sn")
    return origin, start_daemon(module_process_group, work, "peer", "127.0.0.75", supernode)


def wait_for_log(daemon: Daemon, text: str, timeout: float) -> None:
    daemon.proc.wait_until(lambda: text in daemon.proc.log(), repr(text), timeout)


def test_timeout_ends_dfget_with_one_line_and_stops_the_download(
    slow_swarm: tuple[OriginServer, Daemon], tmp_path: Path
) -> None:
    origin, daemon = slow_swarm
    result, elapsed = timed(
        origin.url("slow0.bin"), "-o", str(tmp_path / "s.bin"), "--daemon", daemon.endpoint, "--timeout", "2s"
    )
    assert result.returncode == 1
    assert one_line(result) == "dfget: timed out after 2s (--timeout)"
    assert elapsed < 2 + 3, f"{elapsed:.1f}s"
    assert leftovers(tmp_path) == [] and not (tmp_path / "s.bin").exists()
    wait_for_log(daemon, "every dfget waiting for it left; stopping the download", 10)
    stopped = re.findall(r"task=(\w+): every dfget waiting for it left", daemon.proc.log())[-1]
    partial = daemon.data_dir / "tasks" / stopped
    daemon.proc.wait_until(lambda: not partial.exists(), "the stopped download's partial task removed", 10)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_download_leaves_no_temp_file(
    slow_swarm: tuple[OriginServer, Daemon], tmp_path: Path, signum: signal.Signals
) -> None:
    origin, daemon = slow_swarm
    name = f"slow{1 if signum == signal.SIGTERM else 2}.bin"
    proc = subprocess.Popen(
        [console_script("dfget"), origin.url(name), "-o", str(tmp_path / name), "--daemon", daemon.endpoint],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while not leftovers(tmp_path) and time.monotonic() < deadline:  # the temp file exists: mid-download
            time.sleep(0.05)
        assert leftovers(tmp_path), "dfget never started writing"
        time.sleep(1.0)
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signum, stderr
    assert stderr.strip() == f"dfget: interrupted by {signum.name}"
    assert leftovers(tmp_path) == [] and not (tmp_path / name).exists()
