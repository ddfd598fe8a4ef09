"""The supernode scheduling a running swarm (the task's owner) is SIGKILLed: the task moves to the next supernode,
which rebuilds it from what the seed peer (its reader) reports, and the swarm goes on; the origin hardly notices.

Two real supernodes (--no-seed-peer), one seed peer (dfdaemon --seed) and three plain dfdaemons, all with
`--supernode A,B`; an origin at 3 MB/s per response that counts the bytes it sends. Each host downloads one 24 MiB
file (with a digest, and without one).
"""

from __future__ import annotations

import concurrent.futures
import re
import time
from pathlib import Path

import pytest
from cluster_procs import tasks_on
from fault_procs import start_supernode
from fixtures.origin import start_origin, write_random_file
from fixtures.processes import ProcessGroup
from peer_procs import dfget, start_daemon

SIZE = 6 * (4 << 20) + 99


@pytest.mark.parametrize("digest", [True, False], ids=["with-digest", "without-digest"])
def test_killing_the_supernode_of_a_running_swarm_keeps_the_swarm(
    process_group: ProcessGroup, tmp_path: Path, digest: bool
) -> None:
    content = "sha256:" + write_random_file(tmp_path / "origin" / "f.bin", SIZE, seed=91)
    origin = start_origin(process_group, tmp_path / "origin", rate=3_000_000)
    first, sn_a = start_supernode(process_group, tmp_path, "sn-a", "--heartbeat-interval", "1000", "--no-seed-peer")
    second, sn_b = start_supernode(process_group, tmp_path, "sn-b", "--heartbeat-interval", "1000", "--no-seed-peer")
    both = f"{first},{second}"
    procs = {first: sn_a, second: sn_b}
    seed = start_daemon(process_group, tmp_path, "seed", "127.0.0.81", both, "--seed")
    seed.proc.wait_until(lambda: "seed peer taking orders" in seed.proc.log(), "seed peer's order stream")
    peers = [start_daemon(process_group, tmp_path, f"p{i}", f"127.0.0.{81 + i}", both) for i in (1, 2, 3)]
    extra = ("--digest", content) if digest else ()
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        jobs = [
            pool.submit(dfget, origin.url("f.bin"), "-o", str(tmp_path / f"out{i}"), "--daemon", p.endpoint, *extra)
            for i, p in enumerate(peers)
        ]
        seed.proc.wait_until(lambda: "reading the origin for the swarm" in seed.proc.log(), "the seed peer reads")
        deadline = time.monotonic() + 30
        while origin.bytes_served("f.bin") < SIZE / 3:  # a third of the file read and spread (however many readers)
            assert time.monotonic() < deadline, seed.proc.tail()
            time.sleep(0.05)
        (owner,) = [address for address in procs if tasks_on(address)]  # the supernode scheduling the swarm
        (other,) = [address for address in procs if address != owner]
        killed_at = time.monotonic()
        procs[owner].kill()
        results = [job.result() for job in jobs]
        after = time.monotonic() - killed_at
    logs = "\n".join(f"--- {d.proc.name}\n{d.proc.tail(30)}" for d in (seed, *peers))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results] + [logs]
    data = (origin.root / "f.bin").read_bytes()
    assert all((tmp_path / f"out{i}").read_bytes() == data for i in range(3))
    sent = origin.bytes_served("f.bin")
    from_origin = [
        int(re.findall(r"done: \d+ bytes, \d+ from peers, (\d+) from origin", p.proc.log())[-1]) for p in peers
    ]
    print(
        f"\norigin sent {sent / SIZE:.3f}x the file ({'with' if digest else 'without'} digest); the plain peers read "
        f"{sum(from_origin) / SIZE:.3f}x of it; downloads ended {after:.1f}s after the kill"
    )
    assert tasks_on(other), logs  # the swarm moved there
    for daemon in (seed, *peers):
        assert "registering the task again" in daemon.proc.log(), daemon.proc.tail(40)
    # Before seed peers the plain peers went back to the origin: 3.12x. What may be read twice: the pieces in flight
    # at the kill, and a piece read by a peer that reached the next supernode before the seed peer did.
    assert sent <= SIZE + 2 * (4 << 20), logs
