"""The in-process seed peer's private socket directories: a killed supernode's are removed at the next start,
a running or starting supernode's are not."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from supernode.embedded_seed import DIR_PREFIX, SOCKET_NAME, STALE_AFTER_S, remove_stale_dirs


def make_dir(parent: Path, name: str, age_s: float) -> Path:
    path = parent / (DIR_PREFIX + name)
    path.mkdir(mode=0o700)
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def bound_socket(path: Path, listen: bool) -> socket.socket:
    """A unix socket at path; without listen() a connect is refused, as with a killed process's socket file."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    if listen:
        sock.listen(1)
    return sock


def test_only_old_dirs_without_a_listener_go(tmp_path: Path) -> None:
    old = STALE_AFTER_S + 5
    killed = make_dir(tmp_path, "killed", 0)
    dead = bound_socket(killed / SOCKET_NAME, listen=False)
    dead.close()  # the file stays, as after SIGKILL
    os.utime(killed, (time.time() - old, time.time() - old))
    never_bound = make_dir(tmp_path, "never-bound", old)
    running = make_dir(tmp_path, "running", 0)
    live = bound_socket(running / SOCKET_NAME, listen=True)
    os.utime(running, (time.time() - old, time.time() - old))
    starting = make_dir(tmp_path, "starting", 1)  # mkdtemp'd a moment ago, not bound yet
    other = tmp_path / "dandelion-other"
    other.mkdir()
    os.utime(other, (time.time() - old, time.time() - old))
    try:
        removed = remove_stale_dirs(tmp_path)
    finally:
        live.close()
    assert sorted(removed) == sorted([killed, never_bound])
    assert not killed.exists() and not never_bound.exists()
    assert running.exists() and starting.exists() and other.exists()


def test_a_symlink_is_never_followed(tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.mkdir()
    (target / "keep").write_text("x")
    link = tmp_path / (DIR_PREFIX + "link")
    link.symlink_to(target)
    assert remove_stale_dirs(tmp_path, now=time.time() + 10 * STALE_AFTER_S) == []
    assert (target / "keep").exists() and link.is_symlink()
