"""A full cache disk, with real processes: dfget fails fast with the cause, the daemon stays idle, cleans the
partial task and evicts old entries to make room."""

from __future__ import annotations

import errno
import importlib.util
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from fault_procs import cpu_share, leftovers, start_supernode, tmpfs
from fixtures.origin import OriginServer, start_origin, write_random_file
from fixtures.processes import ProcessGroup
from peer_procs import Daemon, dfget, start_daemon

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("supernode.__main__") is None, reason="the supernode has no entry point yet"
)

MIB = 1 << 20
FILES = {"big.bin": 100 * MIB, "small.bin": MIB + 3, "old.bin": 36 * MIB, "new.bin": 36 * MIB, "slow.bin": 24 * MIB}
FAIL_WITHIN_S = 20.0  # dfget's bound on a full disk
IDLE_CPU = 0.1  # share of a core an idle daemon may use (heartbeats)


@pytest.fixture(scope="module")
def origin_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("origin")
    for index, (name, size) in enumerate(FILES.items()):
        write_random_file(root / name, size, seed=40 + index)
    return root


def run_dfget(
    origin: OriginServer, daemon: Daemon, name: str, out: Path
) -> tuple[subprocess.CompletedProcess[str], float]:
    began = time.monotonic()
    result = dfget(origin.url(name), "-o", str(out), "--daemon", daemon.endpoint, timeout=120)
    return result, time.monotonic() - began


def assert_ok(origin: OriginServer, daemon: Daemon, name: str, out: Path) -> None:
    result, _ = run_dfget(origin, daemon, name, out)
    assert result.returncode == 0, result.stderr + daemon.proc.tail()
    assert out.read_bytes() == (origin.root / name).read_bytes()


def assert_no_space(result: subprocess.CompletedProcess[str], elapsed: float, daemon: Daemon) -> None:
    assert result.returncode != 0, daemon.proc.tail()
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"dfget: no space left on device in the cache directory {daemon.data_dir} (needed ")
    assert elapsed < FAIL_WITHIN_S, f"dfget took {elapsed:.1f}s"


def test_content_larger_than_the_disk_fails_fast_then_the_daemon_works_and_evicts(
    process_group: ProcessGroup, origin_root: Path, tmp_path: Path
) -> None:
    origin = start_origin(process_group, origin_root)
    supernode, _ = start_supernode(process_group, tmp_path, "sn")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with tmpfs(tmp_path / "peer", "64m"):
        daemon = start_daemon(process_group, tmp_path, "peer", "127.0.0.71", supernode)
        result, elapsed = run_dfget(origin, daemon, "big.bin", out_dir / "big.bin")
        assert_no_space(result, elapsed, daemon)
        assert cpu_share(daemon.proc.pid) < IDLE_CPU, daemon.proc.tail()  # no retry loop left behind
        assert leftovers(out_dir) == [] and not (out_dir / "big.bin").exists()

        assert_ok(origin, daemon, "small.bin", out_dir / "small.bin")  # nothing of big.bin holds the disk
        assert_ok(origin, daemon, "old.bin", out_dir / "old.bin")
        # 36 MiB more do not fit beside old.bin on 64 MiB: the least recently used entries make room.
        assert_ok(origin, daemon, "new.bin", out_dir / "new.bin")
        assert "evicted" in daemon.proc.log()
        tasks = daemon.data_dir / "tasks"
        assert len(list(tasks.iterdir())) == 1  # new.bin alone: small.bin went first, then old.bin
        daemon.proc.stop()


def fill(directory: Path) -> None:
    """Write to directory until its file system is full."""
    block = os.urandom(MIB)
    with open(directory / "filler", "wb", buffering=0) as out:
        try:
            while True:
                out.write(block)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def test_disk_filling_up_during_a_download_fails_it_and_cleans_it(
    process_group: ProcessGroup, origin_root: Path, tmp_path: Path
) -> None:
    origin = start_origin(process_group, origin_root, rate=8 * MIB)  # slow.bin takes 3 s
    supernode, _ = start_supernode(process_group, tmp_path, "sn")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with tmpfs(tmp_path / "peer", "32m"):
        daemon = start_daemon(process_group, tmp_path, "peer", "127.0.0.72", supernode)
        filler = threading.Timer(1.0, fill, [daemon.data_dir])
        filler.start()
        result, elapsed = run_dfget(origin, daemon, "slow.bin", out_dir / "slow.bin")
        filler.join()
        assert_no_space(result, elapsed, daemon)
        assert cpu_share(daemon.proc.pid) < IDLE_CPU, daemon.proc.tail()
        assert leftovers(out_dir) == []
        (daemon.data_dir / "filler").unlink()
        assert list((daemon.data_dir / "tasks").iterdir()) == []  # the partial task is gone
        assert_ok(origin, daemon, "small.bin", out_dir / "small.bin")
        daemon.proc.stop()
