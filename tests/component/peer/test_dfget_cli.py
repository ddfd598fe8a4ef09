"""dfget and dfdaemon as real processes without a supernode: errors, atomic output, back-to-source."""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.origin import OriginServer, start_origin, write_random_file
from fixtures.processes import ProcessGroup, console_script, free_port
from peer_procs import Daemon, dfget, start_daemon

SIZE = 6 * (4 << 20) + 5


@pytest.fixture(scope="module")
def origin(module_process_group: ProcessGroup, tmp_path_factory: pytest.TempPathFactory) -> OriginServer:
    root = tmp_path_factory.mktemp("origin")
    write_random_file(root / "f.bin", SIZE, seed=7)
    return start_origin(module_process_group, root)


def no_daemon(tmp_path: Path) -> str:
    return f"unix:{tmp_path / 'no-daemon.sock'}"


NOTICE = "downloading from the origin directly"


def only_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line dfget printed, besides the notice that it goes to the origin without a swarm."""
    lines = [line for line in result.stderr.strip().splitlines() if NOTICE not in line]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_help_has_examples() -> None:
    for command in ("dfget", "dfdaemon"):
        result = subprocess.run([console_script(command), "--help"], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0 and "examples:" in result.stdout


def test_plain_back_to_source(origin: OriginServer, tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    digest = hashlib.sha256((origin.root / "f.bin").read_bytes()).hexdigest()
    result = dfget(origin.url("f.bin"), "-o", str(out), "--daemon", no_daemon(tmp_path), "--digest", f"sha256:{digest}")
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == (origin.root / "f.bin").read_bytes()
    # No progress bar when stderr is not a TTY; one line saying that the swarm is bypassed.
    assert result.stderr == f"dfget: no dfdaemon answers at {no_daemon(tmp_path)}: {NOTICE}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]  # no temp file left


@pytest.mark.parametrize(
    ("path", "extra", "message"),
    [
        ("missing.bin", [], "origin returned HTTP 404 Not Found for "),
        ("private/f.bin", ["--header", "Authorization: Basic dTpzM2NyZXQ="], "origin returned HTTP 401"),
        ("f.bin", ["--digest", "sha256:" + "0" * 64], "has digest sha256:"),
        ("f.bin", ["--no-back-source"], "--no-back-source forbids"),
    ],
)
def test_errors_leave_no_file(origin: OriginServer, tmp_path: Path, path: str, extra: list[str], message: str) -> None:
    out = tmp_path / "out.bin"
    result = dfget(origin.url(path), "-o", str(out), "--daemon", no_daemon(tmp_path), *extra)
    assert result.returncode != 0
    line = only_line(result)
    assert line.startswith("dfget: ") and message in line
    assert "s3cret" not in result.stderr and "dTpzM2NyZXQ=" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments(tmp_path: Path) -> None:
    result = dfget("ftp://host/x", "-o", str(tmp_path / "x"))
    assert result.returncode != 0 and "unsupported URL scheme 'ftp'" in only_line(result)
    result = dfget("http://127.0.0.1:1/x", "-o", str(tmp_path / "missing-dir" / "x"))
    assert result.returncode != 0 and "output directory" in only_line(result)
    result = dfget("http://127.0.0.1:1/x", "-o", str(tmp_path / "x"), "--digest", "sha256:zz")
    assert result.returncode != 0 and "invalid digest" in only_line(result)
    assert list(tmp_path.iterdir()) == []


def test_peer_port_instead_of_daemon_is_named(
    origin: OriginServer, process_group: ProcessGroup, tmp_path: Path
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    daemon: Daemon = start_daemon(process_group, tmp_path, "peer", "127.0.0.22", dead)
    out = tmp_path / "out.bin"
    result = dfget(origin.url("f.bin"), "-o", str(out), "--daemon", f"{daemon.ip}:{daemon.port}")
    assert result.returncode != 0
    line = only_line(result)
    assert f"{daemon.ip}:{daemon.port} answers gRPC but is no dfdaemon's DaemonService" in line, line
    assert "Method not found" not in result.stderr and NOTICE not in result.stderr
    assert not out.exists()


def test_finds_the_quickstart_daemon_without_daemon_flag(
    origin: OriginServer, process_group: ProcessGroup, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    (home / "run").mkdir(parents=True)
    env = {**os.environ, "DANDELION_HOME": str(home), "XDG_RUNTIME_DIR": str(tmp_path / "xdg")}
    if os.geteuid() == 0 and Path("/run/dandelion/dfdaemon.sock").exists():
        pytest.skip("a dfdaemon owns the default socket of this machine")
    dead = f"127.0.0.1:{free_port()}"
    daemon: Daemon = start_daemon(process_group, home / "run", "dfdaemon", "127.0.0.23", dead)
    assert daemon.socket == home / "run" / "dfdaemon.sock"  # where scripts/quickstart.sh puts it
    out = tmp_path / "out.bin"
    result = subprocess.run(
        [console_script("dfget"), origin.url("f.bin"), "-o", str(out), "--log-level", "info"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr + daemon.proc.tail()
    assert f"using the dfdaemon at unix:{daemon.socket}" in result.stderr and NOTICE not in result.stderr
    assert out.read_bytes() == (origin.root / "f.bin").read_bytes()
    assert any((daemon.data_dir / "tasks").iterdir())


def test_daemon_goes_back_to_source_when_supernode_is_down(
    origin: OriginServer, process_group: ProcessGroup, tmp_path: Path
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    daemon: Daemon = start_daemon(process_group, tmp_path, "peer", "127.0.0.21", dead)
    origin.reset()
    for name in ("a.bin", "b.bin"):
        out = tmp_path / name
        result = dfget(origin.url("f.bin"), "-o", str(out), "--daemon", daemon.endpoint)
        assert result.returncode == 0, result.stderr + daemon.proc.tail()
        assert out.read_bytes() == (origin.root / "f.bin").read_bytes()
    assert origin.bytes_served("f.bin") == SIZE  # the second came from the daemon's cache
    assert "going back to source" in daemon.proc.log()

    result = dfget(
        origin.url("f.bin") + "?x=1", "-o", str(tmp_path / "c.bin"), "--daemon", daemon.endpoint, "--no-back-source"
    )
    assert result.returncode != 0 and "back-to-source is off" in only_line(result)
    assert not (tmp_path / "c.bin").exists()

    daemon.proc.signal(signal.SIGTERM)
    daemon.proc.popen.wait(15)
    assert daemon.proc.popen.returncode == 0
    assert not daemon.socket.exists()


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (needs root and mount rights; skipped elsewhere)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_disk_full_is_one_line_and_no_file(origin: OriginServer, tiny_fs: Path, tmp_path: Path) -> None:
    result = dfget(origin.url("f.bin"), "-o", str(tiny_fs / "out.bin"), "--daemon", no_daemon(tmp_path))
    assert result.returncode != 0
    assert only_line(result) == f"dfget: disk full writing {tiny_fs / 'out.bin'}"
    assert list(tiny_fs.iterdir()) == []


def test_progress_bar_on_a_tty(origin: OriginServer, tmp_path: Path) -> None:
    if shutil.which("script") is None:
        pytest.skip("script(1) is not installed")
    out = tmp_path / "tty.bin"
    command = shlex.join(
        [console_script("dfget"), origin.url("f.bin"), "-o", str(out), "--daemon", no_daemon(tmp_path)]
    )
    result = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout
    assert "100.0%" in result.stdout and "MB/s" in result.stdout
    assert out.read_bytes() == (origin.root / "f.bin").read_bytes()
