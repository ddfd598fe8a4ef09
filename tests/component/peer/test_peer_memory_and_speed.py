"""Peak memory of a dfdaemon moving content peer to peer, and (opt-in) throughput against nginx -> curl."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.origin import OriginServer, start_origin, write_random_file
from fixtures.processes import ProcessGroup, console_script, free_port
from peer_procs import Daemon, dfget, start_daemon

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("supernode.__main__") is None, reason="the supernode has no entry point yet"
)

RSS_LIMIT_KB = 150 * 1024
PERF = os.environ.get("DANDELION_PERF") == "1"


@pytest.fixture(autouse=True)
def free_disk(tmp_path: Path) -> Iterator[None]:
    """Delete the GiB-sized files afterwards (logs stay): pytest keeps tmp dirs of recent runs."""
    yield
    for path in tmp_path.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.stat().st_size > 16 << 20:
            path.unlink(missing_ok=True)


def peak_rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1))


def swarm(group: ProcessGroup, work: Path, size: int) -> tuple[OriginServer, list[Daemon]]:
    root = work / "origin"
    write_random_file(root / "big.bin", size, seed=99)
    origin = start_origin(group, root)
    port = free_port()
    sn = group.start(
        "supernode",
        [
            console_script("supernode"),
            "--listen",
            f"127.0.0.1:{port}",
            "--data-dir",
            str(work / "sn"),
            "--advertise-ip",
            "127.0.0.1",
        ],
    )
    sn.wait_for_tcp("127.0.0.1", port, timeout=30)
    daemons = [
        start_daemon(
            group,
            work,
            f"peer{i}",
            f"127.0.0.{70 + i}",
            f"127.0.0.1:{port}",
            "--upload-limit",
            "0",
            "--log-level",
            "info",
        )
        for i in (1, 2)
    ]
    return origin, daemons


def download(origin: OriginServer, daemon: Daemon, out: Path) -> float:
    started = time.monotonic()
    result = dfget(origin.url("big.bin"), "-o", str(out), "--daemon", daemon.endpoint, timeout=600)
    assert result.returncode == 0, result.stderr + daemon.proc.tail()
    return time.monotonic() - started


def daemon_seconds(daemon: Daemon, timeout: float = 30.0) -> float:
    """The seconds of the daemon's last download, from its log (written after it flushed its cache file, which
    may be after dfget finished)."""
    pattern = r"done: \d+ bytes, (\d+) from peers, \d+ from origin, ([\d.]+)s"
    deadline = time.monotonic() + timeout
    while not (found := re.findall(pattern, daemon.proc.log())) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert found and int(found[-1][0]) > 0, daemon.proc.tail()
    return float(found[-1][1])


def test_peak_rss_moving_content_between_peers(process_group: ProcessGroup, tmp_path: Path) -> None:
    size = (1 << 30) if PERF else (384 << 20)
    origin, (first, second) = swarm(process_group, tmp_path, size)
    download(origin, first, tmp_path / "one.bin")
    (tmp_path / "one.bin").unlink()
    download(origin, second, tmp_path / "two.bin")
    assert (tmp_path / "two.bin").stat().st_size == size
    daemon_seconds(second)  # peers served it
    print(f"peak RSS: {[peak_rss_kb(d.proc.pid) // 1024 for d in (first, second)]} MB")
    for daemon in (first, second):
        assert peak_rss_kb(daemon.proc.pid) <= RSS_LIMIT_KB, f"{daemon.proc.name}: {peak_rss_kb(daemon.proc.pid)} kB"


@pytest.fixture
def nginx(tmp_path: Path, process_group: ProcessGroup) -> Iterator[tuple[str, Path]]:
    if shutil.which("nginx") is None or shutil.which("curl") is None:
        pytest.skip("nginx or curl is not installed")
    root = tmp_path / "nginx-root"
    root.mkdir()
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(
        ("user root;\n" if os.geteuid() == 0 else "")  # workers must read the pytest tmp dir (mode 0700)
        + f"daemon off; worker_processes 1; pid {prefix}/nginx.pid; error_log {prefix}/error.log;\n"
        "events {}\n"
        f"http {{ access_log off; sendfile on; client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy;\n"
        f"  fastcgi_temp_path {prefix}/fcgi; uwsgi_temp_path {prefix}/uwsgi; scgi_temp_path {prefix}/scgi;\n"
        f"  server {{ listen 127.0.0.1:{port}; root {root}; }} }}\n"
    )
    proc = process_group.start("nginx", ["nginx", "-p", str(prefix), "-c", str(conf)])
    proc.wait_for_tcp("127.0.0.1", port, timeout=20)
    yield f"http://127.0.0.1:{port}", root


@pytest.mark.skipif(not PERF, reason="set DANDELION_PERF=1 to measure 1 GiB throughput")
def test_peer_to_peer_throughput_against_nginx(
    process_group: ProcessGroup, tmp_path: Path, nginx: tuple[str, Path]
) -> None:
    size = 1 << 30
    origin, (first, second) = swarm(process_group, tmp_path, size)
    base_url, nginx_root = nginx
    os.link(origin.root / "big.bin", nginx_root / "big.bin")
    subprocess.run(["cat", str(nginx_root / "big.bin")], stdout=subprocess.DEVNULL, check=True)  # page cache
    # curl writes to disk as the peer does (its data file); /dev/null would compare writing against not writing
    started = time.monotonic()
    subprocess.run(["curl", "-sf", "-o", str(tmp_path / "curl.bin"), f"{base_url}/big.bin"], check=True, timeout=300)
    baseline = size / (time.monotonic() - started)
    (tmp_path / "curl.bin").unlink()
    download(origin, first, tmp_path / "one.bin")
    (tmp_path / "one.bin").unlink()
    total = download(origin, second, tmp_path / "two.bin")
    p2p = size / daemon_seconds(second)
    print(
        f"nginx->curl {baseline / 1e6:.0f} MB/s; p2p verify+write {p2p / 1e6:.0f} MB/s "
        f"({p2p / baseline:.2f}x); dfget end to end {size / total / 1e6:.0f} MB/s"
    )
    assert p2p >= 0.8 * baseline
