"""Supernode fail-over, restart and loss in the middle of a download, with real processes."""

from __future__ import annotations

import importlib.util
import re
import threading
import time
from pathlib import Path

import pytest
from fixtures.origin import OriginServer, start_origin, write_random_file
from fixtures.processes import ManagedProcess, ProcessGroup, console_script, free_port
from peer_procs import Daemon, dfget, start_daemon

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("supernode.__main__") is None, reason="the supernode has no entry point yet"
)

SIZE = 6 * (4 << 20) + 99


def start_supernode(
    group: ProcessGroup, workdir: Path, name: str, port: int | None = None
) -> tuple[str, ManagedProcess]:
    port = port or free_port("127.0.0.1")
    proc = group.start(
        name,
        [
            console_script("supernode"),
            "--listen",
            f"127.0.0.1:{port}",
            "--data-dir",
            str(workdir / name),
            "--advertise-ip",
            "127.0.0.1",
        ],
    )
    proc.wait_for_tcp("127.0.0.1", port, timeout=30)
    return f"127.0.0.1:{port}", proc


@pytest.fixture
def origin(process_group: ProcessGroup, tmp_path: Path) -> OriginServer:
    root = tmp_path / "origin"
    for index in range(3):
        write_random_file(root / f"f{index}.bin", SIZE, seed=10 + index)
    return start_origin(process_group, root)


def last_done(daemon: Daemon) -> tuple[int, int]:
    found = re.findall(r"done: \d+ bytes, (\d+) from peers, (\d+) from origin", daemon.proc.log())
    assert found, daemon.proc.tail()
    return int(found[-1][0]), int(found[-1][1])


def fetch_ok(origin: OriginServer, daemon: Daemon, name: str, out: Path) -> None:
    result = dfget(origin.url(name), "-o", str(out), "--daemon", daemon.endpoint)
    assert result.returncode == 0, result.stderr + daemon.proc.tail()
    assert out.read_bytes() == (origin.root / name).read_bytes()


def test_fails_over_to_the_next_supernode(process_group: ProcessGroup, origin: OriginServer, tmp_path: Path) -> None:
    addr, _ = start_supernode(process_group, tmp_path, "sn")
    dead = f"127.0.0.1:{free_port()}"
    daemon = start_daemon(process_group, tmp_path, "peer", "127.0.0.61", f"{dead},{addr}")
    fetch_ok(origin, daemon, "f0.bin", tmp_path / "out.bin")
    assert last_done(daemon) == (SIZE, 0)  # through the swarm, not back-to-source


def test_registers_again_after_supernode_restart(
    process_group: ProcessGroup, origin: OriginServer, tmp_path: Path
) -> None:
    addr, supernode = start_supernode(process_group, tmp_path, "sn1")
    daemon = start_daemon(process_group, tmp_path, "peer", "127.0.0.62", addr)
    fetch_ok(origin, daemon, "f0.bin", tmp_path / "a.bin")
    supernode.kill()
    # Gone for long enough that the dfdaemon's reconnect back-off, and gRPC's own pause between connection attempts,
    # run for seconds more once it is back (a supernode slow to start on a loaded machine did that in CI).
    time.sleep(6)
    port = int(addr.rsplit(":", 1)[1])
    start_supernode(process_group, tmp_path, "sn2", port)  # forgets every host
    fetch_ok(origin, daemon, "f1.bin", tmp_path / "b.bin")  # at once: through the supernode that is back
    assert last_done(daemon) == (SIZE, 0), daemon.proc.tail()
    assert daemon.proc.log().count("registered host=") >= 2


def test_supernode_lost_mid_download_goes_back_to_source(
    process_group: ProcessGroup, origin: OriginServer, tmp_path: Path
) -> None:
    slow = start_origin(process_group, origin.root, rate=6 << 20, name="slow-origin")
    addr, supernode = start_supernode(process_group, tmp_path, "sn")
    daemon = start_daemon(process_group, tmp_path, "peer", "127.0.0.63", addr)
    killer = threading.Timer(1.5, supernode.kill)
    killer.start()
    started = time.monotonic()
    try:
        fetch_ok(slow, daemon, "f2.bin", tmp_path / "c.bin")
    finally:
        killer.cancel()
    assert time.monotonic() - started > 1.5
    peers, from_origin = last_done(daemon)
    assert from_origin > 0 and peers + from_origin == SIZE
    assert "going back to source" in daemon.proc.log()
