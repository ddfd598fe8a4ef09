"""Resume with real processes: a dfdaemon SIGKILLed mid-download keeps the pieces it verified and, restarted on its
data dir, fetches only the rest, while the dfget it served waits for it and goes on through it; an origin restarted
mid-body is resumed with Range. Origin bytes are counted across kills by the origin's stats log."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import subprocess
import time
from pathlib import Path

import pytest
from fault_procs import start_supernode
from fixtures.origin import OriginServer, read_stats_log, start_origin, write_random_file
from fixtures.processes import ProcessGroup
from peer_procs import Daemon, dfget, start_daemon, start_dfget

from dfcommon.pieces import piece_count, piece_size_for

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("supernode.__main__") is None, reason="the supernode has no entry point yet"
)

SIZE = 64 << 20
RATE = 16 << 20  # bytes/s the origin sends: the download takes ~4 s


def kill_halfway(
    process_group: ProcessGroup, daemon: Daemon, argv: list[str], stats: Path, how: str
) -> subprocess.Popen[str]:
    """Start a dfget with argv; SIGKILL (how="kill") or SIGTERM the daemon once the origin sent 40% of it. Returns
    the dfget, which waits for its dfdaemon to come back (peer.through_daemon.DAEMON_RETURN_S)."""
    client = start_dfget(process_group, *argv, "--daemon", daemon.endpoint)
    deadline = time.monotonic() + 60
    while read_stats_log(stats)["/big.bin"] < SIZE * 0.4:
        assert time.monotonic() < deadline and client.poll() is None, daemon.proc.tail()
        time.sleep(0.02)
    if how == "kill":
        daemon.proc.kill()
    else:
        assert daemon.proc.stop() == 0
    return client


@pytest.fixture
def origin(process_group: ProcessGroup, tmp_path: Path) -> tuple[OriginServer, Path]:
    root = tmp_path / "origin"
    write_random_file(root / "big.bin", SIZE, seed=7)
    stats = tmp_path / "origin-stats.log"
    return start_origin(process_group, root, rate=RATE, stats_log=stats), stats


@pytest.mark.parametrize(
    ("with_digest", "how"), [(True, "kill"), (False, "kill"), (False, "term")], ids=["digest", "no-digest", "sigterm"]
)
def test_a_killed_daemon_resumes_from_the_pieces_it_verified(
    process_group: ProcessGroup, origin: tuple[OriginServer, Path], tmp_path: Path, with_digest: bool, how: str
) -> None:
    server, stats = origin
    sha = hashlib.sha256((server.root / "big.bin").read_bytes()).hexdigest()
    # With a digest this daemon reads the origin itself, for the swarm; without one,
    # no supernode: back-to-source, the Range path of a partial store.
    if with_digest:
        supernode, _ = start_supernode(process_group, tmp_path, "sn")
    else:
        supernode = "127.0.0.1:9"  # nobody listens: back to source at once
    daemon = start_daemon(process_group, tmp_path, "peer", "127.0.0.71", supernode)
    out = tmp_path / "out.bin"
    argv = [server.url("big.bin"), "-o", str(out)] + (["--digest", f"sha256:{sha}"] if with_digest else [])

    client = kill_halfway(process_group, daemon, argv, stats, how)
    before = read_stats_log(stats)["/big.bin"]
    # The same address, as a dfdaemon restarted by its service manager while the dfget waits for it: the supernode
    # replaces the old host, and the dfget starts over through it.
    daemon = start_daemon(process_group, tmp_path, "peer", "127.0.0.71", supernode, port=daemon.port)
    kept = re.findall(r"kept partial task=\w+: (\d+) of (\d+) pieces verified", daemon.proc.log())
    assert kept and 0.3 <= int(kept[0][0]) / int(kept[0][1]) < 1, daemon.proc.tail()
    _, stderr = client.communicate(timeout=60)
    assert client.returncode == 0 and stderr == "", stderr + daemon.proc.tail()  # no word of the origin
    assert hashlib.sha256(out.read_bytes()).hexdigest() == sha
    total = read_stats_log(stats)["/big.bin"]
    print(
        f"\nresume after SIG{how.upper()} ({'with' if with_digest else 'without'} digest): {'/'.join(kept[0])} pieces "
        f"kept, origin sent {before / SIZE:.2f}x before the kill, {total / SIZE:.2f}x in all"
    )
    assert total <= SIZE * 1.1


def test_an_origin_restart_mid_body_is_resumed_with_range(
    process_group: ProcessGroup, origin: tuple[OriginServer, Path], tmp_path: Path
) -> None:
    server, stats = origin
    daemon = start_daemon(process_group, tmp_path, "peer", "127.0.0.72", "127.0.0.1:9")  # no supernode: the origin
    out = tmp_path / "out.bin"
    client = start_dfget(process_group, server.url("big.bin"), "-o", str(out), "--daemon", daemon.endpoint)
    deadline = time.monotonic() + 60
    while read_stats_log(stats)["/big.bin"] < SIZE * 0.4:
        assert time.monotonic() < deadline and client.poll() is None, daemon.proc.tail()
        time.sleep(0.02)
    server.process.kill()  # the connection drops mid-body; for a second nobody listens
    time.sleep(1.0)
    start_origin(process_group, server.root, rate=RATE, stats_log=stats, port=server.port, name="origin-again")
    _, stderr = client.communicate(timeout=60)
    assert client.returncode == 0, stderr + daemon.proc.tail()
    assert out.read_bytes() == (server.root / "big.bin").read_bytes()
    assert re.search(r"resuming at byte \d+", daemon.proc.log())
    total = read_stats_log(stats)["/big.bin"]
    print(f"\norigin restart mid-body: origin sent {total / SIZE:.3f}x")
    assert total <= SIZE * 1.02


def test_a_failed_download_keeps_its_verified_pieces_for_the_next_try(
    process_group: ProcessGroup, origin: tuple[OriginServer, Path], tmp_path: Path
) -> None:
    """Content with a digest: the origin dies at 40% and stays down until the download gave up (its resumes found
    nobody); the next dfget of it, once the origin is back, fetches only the rest. No seed peer: the dfdaemon is the
    one that reads the origin (a seed peer keeps its verified pieces with the same code)."""
    server, stats = origin
    sha = hashlib.sha256((server.root / "big.bin").read_bytes()).hexdigest()
    supernode, _ = start_supernode(process_group, tmp_path, "sn", "--no-seed-peer")
    daemon = start_daemon(process_group, tmp_path, "peer", "127.0.0.73", supernode)
    out = tmp_path / "out.bin"
    argv = [server.url("big.bin"), "-o", str(out), "--digest", f"sha256:{sha}", "--daemon", daemon.endpoint]
    client = start_dfget(process_group, *argv)
    deadline = time.monotonic() + 60
    while read_stats_log(stats)["/big.bin"] < SIZE * 0.4:
        assert time.monotonic() < deadline and client.poll() is None, daemon.proc.tail()
        time.sleep(0.02)
    server.process.kill()
    client.communicate(timeout=90)
    assert client.returncode != 0 and not out.exists(), daemon.proc.tail()
    kept = re.findall(r"keeping the (\d+) verified pieces of failed task=", daemon.proc.log())
    pieces = piece_count(SIZE, piece_size_for(SIZE))
    assert kept and pieces * 0.15 <= int(kept[-1]) < pieces / 2, daemon.proc.tail()  # killed at 40%
    before = read_stats_log(stats)["/big.bin"]
    start_origin(process_group, server.root, rate=RATE, stats_log=stats, port=server.port, name="origin-again")
    result = dfget(*argv)
    assert result.returncode == 0, result.stderr + daemon.proc.tail()
    assert hashlib.sha256(out.read_bytes()).hexdigest() == sha
    total = read_stats_log(stats)["/big.bin"]
    print(
        f"\nfailed, then again: {kept[-1]}/16 pieces kept; origin sent {before / SIZE:.2f}x, then {total / SIZE:.2f}x"
    )
    assert total <= SIZE * 1.1
