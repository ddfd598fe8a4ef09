"""A download in progress survives the peer registering with the supernode again, with real processes: it
finishes from the swarm, correct, and is never failed as "download cancelled"; and a supernode's word that an
origin failed does not make the peer register again at all."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cluster_procs import tasks_on
from fixtures.origin import OriginServer, start_origin, write_random_file
from fixtures.processes import ManagedProcess, ProcessGroup, console_script, free_port
from peer_procs import Daemon, start_daemon

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("supernode.__main__") is None, reason="the supernode has no entry point yet"
)

SIZE = 24 * (1 << 20) + 99
# Longer than the dfdaemon takes to find a frozen supernode (some 20 s): its pings (keepalive every 10 s, 10 s to
# answer any ping) go unanswered and the connection closes; the next heartbeat fails, and the peer registers again.
# (A heartbeat that merely times out on a connection still up is a supernode behind its calls, and keeps it.)
STALL_S = 30.0


def start_supernode(group: ProcessGroup, workdir: Path, *extra: str, name: str = "sn") -> tuple[str, ManagedProcess]:
    port = free_port("127.0.0.1")
    proc = group.start(
        name,
        [
            console_script("supernode"),
            *("--listen", f"127.0.0.1:{port}", "--data-dir", str(workdir / name), "--advertise-ip", "127.0.0.1"),
            *extra,
        ],
    )
    proc.wait_for_tcp("127.0.0.1", port, timeout=30)
    return f"127.0.0.1:{port}", proc


def download_across(
    group: ProcessGroup, workdir: Path, ip: str, supernode: str, meanwhile: Callable[[Daemon], None]
) -> Daemon:
    """Download SIZE bytes through a dfdaemon at 8 MiB/s (so that it runs for a few seconds), calling meanwhile
    once the first piece came from the swarm; the daemon, once dfget wrote the content, correct."""
    write_random_file(workdir / "origin" / "f.bin", SIZE, seed=77)
    origin: OriginServer = start_origin(group, workdir / "origin")
    daemon = start_daemon(group, workdir, "peer", ip, supernode)
    out = workdir / "out.bin"
    argv = [console_script("dfget"), origin.url("f.bin"), "-o", str(out), "--daemon", daemon.endpoint]
    dfget = subprocess.Popen([*argv, "--rate-limit", "8M"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        daemon.proc.wait_until(lambda: "piece 0 from" in daemon.proc.log(), "a first piece from the swarm", 30)
        meanwhile(daemon)
        _, stderr = dfget.communicate(timeout=60)
    finally:
        if dfget.poll() is None:
            dfget.kill()
            dfget.wait()
    assert dfget.returncode == 0, stderr + daemon.proc.tail(60)
    assert out.read_bytes() == (origin.root / "f.bin").read_bytes()
    return daemon


def from_swarm_only(daemon: Daemon) -> bool:
    found = re.findall(r"done: (\d+) bytes, (\d+) from peers, (\d+) from origin", daemon.proc.log())
    return bool(found) and found[-1] == (str(SIZE), str(SIZE), "0")


def connections_to(pid: int, port: int) -> int:
    """Established TCP connections that process pid holds to port (gRPC may use IPv6 sockets for IPv4)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


def test_download_survives_reregistration(process_group: ProcessGroup, tmp_path: Path) -> None:
    # A 1 s heartbeat: the supernode may also drop the host for missed heartbeats before it registers again.
    address, supernode = start_supernode(process_group, tmp_path, "--heartbeat-interval", "1000")

    def stall(_daemon: Daemon) -> None:
        supernode.signal(signal.SIGSTOP)  # as on a saturated uplink: the heartbeat times out
        try:
            time.sleep(STALL_S)
        finally:
            supernode.signal(signal.SIGCONT)

    daemon = download_across(process_group, tmp_path, "127.0.0.64", address, stall)
    log = daemon.proc.log()
    assert len(re.findall(r"registered host=", log)) >= 2, daemon.proc.tail(60)  # it did register again
    assert "registering the task again" in log
    assert "download cancelled" not in log
    assert from_swarm_only(daemon), daemon.proc.tail(60)  # no back-to-source for what the swarm has


def test_failing_origin_keeps_the_host_registered(process_group: ProcessGroup, tmp_path: Path) -> None:
    """The supernode answering UNAVAILABLE for an unreachable origin is not the supernode being unavailable: the
    peer neither moves nor registers again, and the download running beside it is undisturbed."""
    address, _ = start_supernode(process_group, tmp_path)

    def fail_another(daemon: Daemon) -> None:
        dead = f"http://127.0.0.1:{free_port()}/nothing.bin"
        failed = subprocess.run(
            [console_script("dfget"), dead, "-o", str(tmp_path / "dead.bin"), "--daemon", daemon.endpoint],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert failed.returncode != 0 and "connection refused" in failed.stderr, failed.stderr

    daemon = download_across(process_group, tmp_path, "127.0.0.65", address, fail_another)
    log = daemon.proc.log()
    assert len(re.findall(r"registered host=", log)) == 1, daemon.proc.tail(60)
    assert "registering the task again" not in log
    assert from_swarm_only(daemon), daemon.proc.tail(60)


def test_heartbeats_have_their_own_connection(process_group: ProcessGroup, tmp_path: Path) -> None:
    """While the seed sends pieces, the scheduler's calls use a second connection to the supernode: on a saturated
    link a heartbeat does not wait behind piece data (it took 1-3 s there on a shared one, 10 s at worst)."""
    address, _ = start_supernode(process_group, tmp_path)
    port = int(address.rsplit(":", 1)[1])
    seen: list[int] = []
    download_across(
        process_group, tmp_path, "127.0.0.66", address, lambda d: seen.append(connections_to(d.proc.pid, port))
    )
    assert seen == [2]


def test_download_follows_the_task_to_the_next_supernode(process_group: ProcessGroup, tmp_path: Path) -> None:
    """The supernode of a running download (its task's owner) stalls past the heartbeat timeout: the task moves to
    the next supernode on its ring, and the download registers it there and finishes from its swarm, while the
    first stays stalled."""
    first, sn_a = start_supernode(process_group, tmp_path, name="sn-a")
    second, sn_b = start_supernode(process_group, tmp_path, name="sn-b")
    procs = {first: sn_a, second: sn_b}
    stalled: list[str] = []

    def stall(_daemon: Daemon) -> None:
        (owner,) = [address for address in procs if tasks_on(address)]  # the one supernode scheduling the task
        stalled.append(owner)
        procs[owner].signal(signal.SIGSTOP)

    try:
        daemon = download_across(process_group, tmp_path, "127.0.0.67", f"{first},{second}", stall)
    finally:
        for proc in procs.values():
            proc.signal(signal.SIGCONT)
    log = daemon.proc.log()
    (other,) = [address for address in procs if address not in stalled]
    assert f"supernode {stalled[0]} unavailable" in log, daemon.proc.tail(60)
    assert "registering the task again" in log
    assert tasks_on(other), daemon.proc.tail(60)  # the task is scheduled there now
    assert from_swarm_only(daemon), daemon.proc.tail(60)
