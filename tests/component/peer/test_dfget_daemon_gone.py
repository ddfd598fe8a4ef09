"""A dfdaemon that goes away while it serves a dfget (SIGKILL mid-download) and does not come back: dfget waits for it
(through_daemon.DAEMON_RETURN_S), then starts over from the origin and says so, as Dragonfly's dfget does, or with
--no-back-source fails with one line and leaves no file. A dfdaemon that is alive and answers an error itself is not
second-guessed. (One that comes back while dfget waits: test_peer_resume.py.)"""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path

import pytest
from fixtures.origin import OriginServer, start_origin, write_random_file
from fixtures.processes import ProcessGroup, console_script, free_port
from peer_procs import Daemon, dfget, start_daemon, start_dfget

from peer.through_daemon import DAEMON_RETURN_S

SIZE = 12 * (1 << 20) + 3
RATE = 3_000_000  # bytes/s per origin response: the dfdaemon's read lasts ~4 s, long enough to kill it midway
WENT_AWAY = "went away during the download"
NOT_BACK = f"and did not come back within {DAEMON_RETURN_S:.0f} s"


@pytest.fixture
def origin(process_group: ProcessGroup, tmp_path: Path) -> OriginServer:
    root = tmp_path / "origin"
    write_random_file(root / "f.bin", SIZE, seed=23)
    return start_origin(process_group, root, rate=RATE)


@pytest.fixture
def daemon(process_group: ProcessGroup, tmp_path: Path) -> Daemon:
    """A dfdaemon whose supernode is down: it reads the origin itself."""
    return start_daemon(process_group, tmp_path, "peer", "127.0.0.27", f"127.0.0.1:{free_port()}")


def kill_midway(
    process_group: ProcessGroup, origin: OriginServer, daemon: Daemon, out: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    """Start dfget through the daemon, SIGKILL the daemon once the origin has sent it a quarter of the file, and
    return dfget's result."""
    digest = hashlib.sha256((origin.root / "f.bin").read_bytes()).hexdigest()
    argv = [origin.url("f.bin"), "-o", str(out), "--daemon", daemon.endpoint, "--digest", f"sha256:{digest}"]
    client = start_dfget(process_group, *argv, *extra)
    deadline = time.monotonic() + 30
    while origin.bytes_served("f.bin") < SIZE // 4:
        assert client.poll() is None, client.communicate()
        assert time.monotonic() < deadline, "the dfdaemon never read the origin"
        time.sleep(0.05)
    served_before = origin.bytes_served("f.bin")
    assert served_before < SIZE, "the dfdaemon had read it all: nothing left to break off"
    daemon.proc.kill()
    killed = time.monotonic()
    _, stderr = client.communicate(timeout=60 + DAEMON_RETURN_S)
    assert time.monotonic() - killed >= DAEMON_RETURN_S, "dfget did not wait for its dfdaemon to come back"
    return subprocess.CompletedProcess(client.args, client.returncode, "", stderr)


def test_dfget_starts_over_from_the_origin(
    process_group: ProcessGroup, origin: OriginServer, daemon: Daemon, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "f.bin"
    out.parent.mkdir()
    result = kill_midway(process_group, origin, daemon, out)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == (origin.root / "f.bin").read_bytes()
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"dfget: the dfdaemon at {daemon.endpoint} {WENT_AWAY} (")
    assert line.endswith(f"{NOT_BACK}: downloading from the origin directly")
    assert sorted(p.name for p in out.parent.iterdir()) == ["f.bin"]  # the temp file (linked or not) is gone
    # Read from the start again: the daemon's part, then the whole file for dfget itself.
    assert origin.bytes_served("f.bin") >= SIZE + SIZE // 4


def test_no_back_source_fails_with_one_line_and_no_file(
    process_group: ProcessGroup, origin: OriginServer, tmp_path: Path
) -> None:
    # --no-back-source reaches the dfdaemon too: it takes the content from the swarm (the supernode's seed peer).
    port = free_port()
    argv = [console_script("supernode"), "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "sn")]
    argv += ["--origin-fetch", "seed"]  # only the seed peer reads the origin: the dfdaemon may not (below)
    process_group.start("supernode", argv).wait_for_tcp("127.0.0.1", port, timeout=30)
    daemon = start_daemon(process_group, tmp_path, "peer", "127.0.0.27", f"127.0.0.1:{port}")
    out = tmp_path / "out" / "f.bin"
    out.parent.mkdir()
    result = kill_midway(process_group, origin, daemon, out, "--no-back-source")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert WENT_AWAY in line and NOT_BACK in line and "--no-back-source forbids downloading from the origin" in line
    assert list(out.parent.iterdir()) == []
    assert origin.bytes_served("f.bin") <= SIZE  # read once, by the seed peer: dfget read nothing itself


def test_a_live_daemons_own_error_is_reported_as_it_is(daemon: Daemon, tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    closed = f"http://127.0.0.1:{free_port()}/f.bin"  # nothing listens: the daemon answers UNAVAILABLE itself
    began = time.monotonic()
    result = dfget(closed, "-o", str(out), "--daemon", daemon.endpoint, timeout=60)
    assert time.monotonic() - began < DAEMON_RETURN_S, "dfget waited for a dfdaemon that answered"
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("dfget: ") and "connection refused" in line, line
    assert WENT_AWAY not in line and "origin directly" not in line
    assert daemon.proc.alive
    assert not out.exists()
