"""Helpers of the fault tests: a small tmpfs, a supernode with chosen flags, a process's CPU time."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fixtures.processes import ManagedProcess, ProcessGroup, console_script, free_port


@contextmanager
def tmpfs(mount_point: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of size at mount_point for the block (skips the test where mounting is not allowed)."""
    mount_point.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def start_supernode(group: ProcessGroup, workdir: Path, name: str, *extra: str) -> tuple[str, ManagedProcess]:
    """A supernode on 127.0.0.1:<free port> advertising 127.0.0.1 unless extra says otherwise."""
    port = free_port("127.0.0.1")
    argv = [console_script("supernode"), "--listen", f"127.0.0.1:{port}", "--data-dir", str(workdir / name)]
    if "--advertise-ip" not in extra:
        argv += ["--advertise-ip", "127.0.0.1"]
    proc = group.start(name, [*argv, *extra])
    proc.wait_for_tcp("127.0.0.1", port, timeout=30)
    return f"127.0.0.1:{port}", proc


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_share(pid: int, seconds: float = 3.0) -> float:
    """Share of one core the process used over the next seconds."""
    before, began = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.monotonic() - began)


def leftovers(directory: Path) -> list[str]:
    """dfget temp files in directory."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".dfget") or ".dfget." in p.name)
