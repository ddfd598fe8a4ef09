"""dfget on the daemon's host takes the verified content from the daemon's cache file instead of having it
streamed over gRPC: a hard link on the same filesystem, else a copy; where it cannot read that file (another
mount namespace, another user) the daemon streams it. A linked output that is modified is not served again."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from dandelion.common.v1 import common_pb2
from dandelion.peer.v1 import peer_pb2, peer_pb2_grpc
from fixtures.origin import OriginServer, start_origin, write_random_file
from fixtures.processes import ProcessGroup, console_script, free_port
from peer_procs import Daemon, dfget, start_daemon

from dfcommon.identity import task_id

SIZE = 5 * (4 << 20) + 123
FALLBACK = "streaming instead"


@pytest.fixture
def origin(process_group: ProcessGroup, tmp_path: Path) -> OriginServer:
    root = tmp_path / "origin"
    write_random_file(root / "f.bin", SIZE, seed=11)
    return start_origin(process_group, root)


@pytest.fixture
def daemon(process_group: ProcessGroup, tmp_path: Path) -> Daemon:
    """A dfdaemon whose supernode is down: it goes back to source, which is all these tests need."""
    return start_daemon(process_group, tmp_path, "peer", "127.0.0.23", f"127.0.0.1:{free_port()}")


def test_local_copy_names_the_cache_file_and_how_much_is_verified(origin: OriginServer, daemon: Daemon) -> None:
    request = peer_pb2.DownloadRequest(url_meta=common_pb2.UrlMeta(url=origin.url("f.bin")), local_copy=True)
    with grpc.insecure_channel(daemon.endpoint) as channel:
        messages = list(peer_pb2_grpc.DaemonServiceStub(channel).Download(request, timeout=60))
    first = messages[0]
    assert first.HasField("local_file")
    info = os.stat(first.local_file.path)
    assert (info.st_dev, info.st_ino) == (first.local_file.device, first.local_file.inode)
    assert Path(first.local_file.path).is_relative_to(daemon.data_dir.resolve())
    assert all(not m.data for m in messages)
    lengths = [m.readable_length for m in messages]
    assert lengths == sorted(lengths) and lengths[-1] == SIZE
    assert messages[-1].done and not any(m.done for m in messages[:-1])
    with open(first.local_file.path, "rb") as cached:
        assert cached.read(SIZE) == (origin.root / "f.bin").read_bytes()


def cache_file(daemon: Daemon, url: str) -> Path:
    return daemon.data_dir / "tasks" / task_id(url) / "data"


def test_dfget_links_the_daemons_cache_file(origin: OriginServer, daemon: Daemon, tmp_path: Path) -> None:
    url = origin.url("f.bin")
    out = tmp_path / "out.bin"
    result = dfget(url, "-o", str(out), "--daemon", daemon.endpoint, "--log-level", "info")
    assert result.returncode == 0, result.stderr + daemon.proc.tail()
    assert FALLBACK not in result.stderr
    assert out.read_bytes() == (origin.root / "f.bin").read_bytes()
    assert out.stat().st_ino == cache_file(daemon, url).stat().st_ino  # linked, not copied
    assert not [p for p in tmp_path.iterdir() if ".dfget" in p.name]  # no temp file left
    again = tmp_path / "again.bin"
    result = dfget(url, "-o", str(again), "--daemon", daemon.endpoint, "--fsync")
    assert result.returncode == 0, result.stderr
    assert again.read_bytes() == out.read_bytes()
    assert origin.bytes_served("f.bin") == SIZE  # the second came from the daemon's cache


def test_a_modified_linked_output_is_not_served_again(origin: OriginServer, daemon: Daemon, tmp_path: Path) -> None:
    url = origin.url("f.bin")
    out = tmp_path / "out.bin"
    assert dfget(url, "-o", str(out), "--daemon", daemon.endpoint).returncode == 0
    with open(out, "r+b") as changed:  # in place: the daemon's cache file changes with it
        changed.seek(1000)
        changed.write(b"edited by the user")
    again = tmp_path / "again.bin"
    result = dfget(url, "-o", str(again), "--daemon", daemon.endpoint)
    assert result.returncode == 0, result.stderr + daemon.proc.tail()
    assert again.read_bytes() == (origin.root / "f.bin").read_bytes()
    assert origin.bytes_served("f.bin") == 2 * SIZE  # fetched again, not served from the changed file
    assert "modified outside the daemon" in daemon.proc.log()


@pytest.fixture
def other_fs(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs: another filesystem than the daemon's data directory (needs root and mount rights)."""
    mount_point = tmp_path / "other-fs"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount_point)], check=False)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_dfget_copies_across_filesystems(origin: OriginServer, daemon: Daemon, other_fs: Path) -> None:
    url = origin.url("f.bin")
    out = other_fs / "out.bin"
    result = dfget(url, "-o", str(out), "--daemon", daemon.endpoint, "--log-level", "info")
    assert result.returncode == 0, result.stderr + daemon.proc.tail()
    assert FALLBACK not in result.stderr  # copied from the cache file, not streamed
    assert out.read_bytes() == (origin.root / "f.bin").read_bytes()
    assert out.stat().st_dev != cache_file(daemon, url).stat().st_dev
    assert [p.name for p in other_fs.iterdir()] == ["out.bin"]


def test_dfget_in_another_mount_namespace_streams_instead(origin: OriginServer, daemon: Daemon, tmp_path: Path) -> None:
    """Like dfget in a container next to the daemon: the cache path holds another file there (same size, other
    bytes). dfget must notice it is not the daemon's file and have the content streamed."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare")
    url = origin.url("f.bin")
    decoy = cache_file(daemon, url)
    out = tmp_path / "out.bin"
    argv = [console_script("dfget"), url, "-o", str(out), "--daemon", daemon.endpoint, "--log-level", "info"]
    script = (
        f"mount -t tmpfs tmpfs {shlex.quote(str(daemon.data_dir))} && "
        f"mkdir -p {shlex.quote(str(decoy.parent))} && "
        f"head -c {SIZE} /dev/zero > {shlex.quote(str(decoy))} && "
        f"exec {shlex.join(argv)}"
    )
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a mount namespace here: {probe.stderr.decode().strip()}")
    result = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr + daemon.proc.tail()
    assert FALLBACK in result.stderr
    assert out.read_bytes() == (origin.root / "f.bin").read_bytes()
    # The decoy stayed in the other namespace: here the path is the daemon's own file.
    assert decoy.read_bytes()[:SIZE] == (origin.root / "f.bin").read_bytes()
