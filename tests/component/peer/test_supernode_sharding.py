"""Tasks spread over a cluster of real supernodes by rendezvous hashing on the task id, and a task's owner
SIGKILLed mid-download: the swarm moves to the next supernode on the task's ring and the origin hardly notices.

Three supernodes (--no-seed-peer) on loopback addresses of their own, a seed peer (dfdaemon --seed) and plain
dfdaemons, all given the same `--supernode A,B,C`. Where a task is scheduled is asked of every supernode (ListTasks);
the owner it should have is computed here from the definition of highest-random-weight hashing.
"""

from __future__ import annotations

import concurrent.futures
import re
import subprocess
import time
from pathlib import Path

from cluster_procs import (
    get_task,
    host_ips,
    longest_piece_gap,
    rendezvous_owner,
    scheduled_on,
    start_supernode_at,
)
from fixtures.origin import start_origin, write_random_file
from fixtures.processes import ManagedProcess, ProcessGroup, console_script
from peer_procs import dfget, start_daemon

from dfcommon.identity import task_id

SUPERNODE_IPS = ["127.0.0.71", "127.0.0.72", "127.0.0.73"]
FILES_PER_SUPERNODE = 2
SMALL = (2 << 20) + 123
BIG = 6 * (4 << 20) + 99


def start_cluster(group: ProcessGroup, tmp_path: Path) -> tuple[list[str], list[ManagedProcess]]:
    started = [
        start_supernode_at(group, tmp_path, f"sn{i}", ip, "--heartbeat-interval", "1000", "--no-seed-peer")
        for i, ip in enumerate(SUPERNODE_IPS)
    ]
    return [address for address, _ in started], [proc for _, proc in started]


def test_tasks_land_on_their_rendezvous_owners(process_group: ProcessGroup, tmp_path: Path) -> None:
    origin = start_origin(process_group, tmp_path / "origin")
    members, _ = start_cluster(process_group, tmp_path)
    everyone = ",".join(members)
    seed = start_daemon(process_group, tmp_path, "seed", "127.0.0.74", everyone, "--seed")
    for address in members:  # one order stream per supernode
        seed.proc.wait_until(lambda a=address: f"taking orders from supernode {a}" in seed.proc.log(), address)
    peers = [start_daemon(process_group, tmp_path, f"p{i}", f"127.0.0.{75 + i}", everyone) for i in (0, 1)]

    # Files chosen so that every supernode owns FILES_PER_SUPERNODE of them.
    files: dict[str, str] = {}  # name -> owner
    for n in range(500):
        name = f"f{n}.bin"
        owner = rendezvous_owner(task_id(origin.url(name)), members)
        if sum(1 for o in files.values() if o == owner) < FILES_PER_SUPERNODE:
            files[name] = owner
        if len(files) == FILES_PER_SUPERNODE * len(members):
            break
    for n, name in enumerate(files):
        write_random_file(origin.root / name, SMALL, seed=300 + n)

    first = next(iter(files))  # preheated: it goes to its owner, which has the seed peer read it
    preheat = dfget("preheat", origin.url(first), "--supernode", everyone)
    assert preheat.returncode == 0, preheat.stderr
    assert f"on supernode {files[first]}" in preheat.stderr, preheat.stderr

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        jobs = {
            (name, i): pool.submit(
                dfget, origin.url(name), "-o", str(tmp_path / f"out-{i}-{name}"), "--daemon", p.endpoint
            )
            for name in files
            for i, p in enumerate(peers)
        }
        results = {key: job.result() for key, job in jobs.items()}
    assert all(r.returncode == 0 for r in results.values()), [r.stderr for r in results.values() if r.returncode]
    for name, i in results:
        assert (tmp_path / f"out-{i}-{name}").read_bytes() == (origin.root / name).read_bytes()

    spread: dict[str, int] = dict.fromkeys(members, 0)
    for name, owner in files.items():
        tid = task_id(origin.url(name))
        assert scheduled_on(members, tid) == [owner], name  # on its owner, and on no other supernode
        swarm = get_task(owner, tid).peers
        assert {p.address.ip for p in swarm} == {"127.0.0.74", "127.0.0.75", "127.0.0.76"}, name
        assert [p.address.ip for p in swarm if p.is_seed] == ["127.0.0.74"]
        spread[owner] += 1
    for address in members:  # every host registered with every supernode
        assert host_ips(address) == {"127.0.0.74", "127.0.0.75", "127.0.0.76"}, address
    sent = origin.bytes_served()
    print(f"\ntasks per supernode: {sorted(spread.values())}; origin sent {sent / (SMALL * len(files)):.3f}x")
    assert sent <= 1.05 * SMALL * len(files)


def test_killing_a_task_owner_mid_download_keeps_the_swarm(process_group: ProcessGroup, tmp_path: Path) -> None:
    origin = start_origin(process_group, tmp_path / "origin", rate=3_000_000)
    write_random_file(tmp_path / "origin" / "f.bin", BIG, seed=92)
    members, procs = start_cluster(process_group, tmp_path)
    everyone = ",".join(members)
    tid = task_id(origin.url("f.bin"))
    owner = rendezvous_owner(tid, members)
    after_owner = rendezvous_owner(tid, [m for m in members if m != owner])
    seed = start_daemon(process_group, tmp_path, "seed", "127.0.0.81", everyone, "--seed")
    for address in members:
        seed.proc.wait_until(lambda a=address: f"taking orders from supernode {a}" in seed.proc.log(), address)
    peers = [start_daemon(process_group, tmp_path, f"p{i}", f"127.0.0.{81 + i}", everyone) for i in (1, 2, 3)]
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        jobs = [
            pool.submit(dfget, origin.url("f.bin"), "-o", str(tmp_path / f"out{i}"), "--daemon", p.endpoint)
            for i, p in enumerate(peers)
        ]
        seed.proc.wait_until(lambda: "reading the origin for the swarm" in seed.proc.log(), "the seed peer reads")
        time.sleep(3.0)  # a third of the file read and spread
        assert scheduled_on(members, tid) == [owner]
        killed_at = time.monotonic()
        procs[members.index(owner)].kill()
        results = [job.result() for job in jobs]
        after = time.monotonic() - killed_at
    logs = "\n".join(f"--- {d.proc.name}\n{d.proc.tail(30)}" for d in (seed, *peers))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results] + [logs]
    data = (origin.root / "f.bin").read_bytes()
    assert all((tmp_path / f"out{i}").read_bytes() == data for i in range(3))
    alive = [m for m in members if m != owner]
    assert scheduled_on(alive, tid) == [after_owner], logs  # the next on the task's ring took the swarm
    sent = origin.bytes_served("f.bin")
    stalls = [longest_piece_gap(p.proc.log(), tid) for p in peers]
    from_origin = [
        int(re.findall(r"done: \d+ bytes, \d+ from peers, (\d+) from origin", p.proc.log())[-1]) for p in peers
    ]
    print(
        f"\norigin sent {sent / BIG:.3f}x the file; the plain peers read {sum(from_origin) / BIG:.3f}x of it; "
        f"longest stall per peer {', '.join(f'{s:.2f}s' for s in stalls)}; downloads ended {after:.1f}s after the kill"
    )
    for daemon in (seed, *peers):
        assert "registering the task again" in daemon.proc.log(), daemon.proc.tail(40)
    assert sent <= 1.05 * BIG, logs


def test_a_returning_owner_gets_new_tasks_while_running_ones_finish_elsewhere(
    process_group: ProcessGroup, tmp_path: Path
) -> None:
    """A task's owner is SIGKILLed mid-download and started again on its address: the running download stays on the
    supernode it moved to, and a task started once the owner answers again is scheduled by it."""
    origin = start_origin(process_group, tmp_path / "origin")
    ips = SUPERNODE_IPS[:2]
    started = [
        start_supernode_at(process_group, tmp_path, f"sn{i}", ip, "--heartbeat-interval", "1000")
        for i, ip in enumerate(ips)
    ]
    members = [address for address, _ in started]
    owned: dict[str, list[str]] = {}  # supernode -> names of files it owns
    for n in range(200):
        owned.setdefault(rendezvous_owner(task_id(origin.url(f"g{n}.bin")), members), []).append(f"g{n}.bin")
    owner, other = members
    running, later = owned[owner][:2]
    write_random_file(origin.root / running, BIG, seed=93)
    write_random_file(origin.root / later, SMALL, seed=94)
    daemon = start_daemon(process_group, tmp_path, "p", "127.0.0.79", ",".join(members))
    argv = [console_script("dfget"), origin.url(running), "-o", str(tmp_path / "running"), "--daemon", daemon.endpoint]
    slow = subprocess.Popen([*argv, "--rate-limit", "2M"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        daemon.proc.wait_until(lambda: "piece 0 from" in daemon.proc.log(), "a first piece from the swarm", 30)
        assert scheduled_on(members, task_id(origin.url(running))) == [owner]
        started[0][1].kill()
        daemon.proc.wait_until(lambda: "registering the task again" in daemon.proc.log(), "the task moved", 30)
        # The owner comes back only once the download is registered elsewhere: a registration still on its way
        # (a plain peer waits a moment before it follows) would rightly go to the owner if it answered by then.
        tid = task_id(origin.url(running))
        daemon.proc.wait_until(lambda: scheduled_on([other], tid) == [other], "the task registered elsewhere", 30)
        port = int(owner.rsplit(":", 1)[1])
        start_supernode_at(process_group, tmp_path, "sn0-again", ips[0], "--heartbeat-interval", "1000", port=port)
        daemon.proc.wait_until(lambda: f"supernode {owner} answers again" in daemon.proc.log(), "the owner back", 30)
        assert slow.poll() is None  # the first download still runs
        fetched = dfget(origin.url(later), "-o", str(tmp_path / "later"), "--daemon", daemon.endpoint)
        assert fetched.returncode == 0, fetched.stderr
        _, stderr = slow.communicate(timeout=120)
    finally:
        if slow.poll() is None:
            slow.kill()
            slow.wait()
    assert slow.returncode == 0, stderr + daemon.proc.tail(60)
    assert (tmp_path / "running").read_bytes() == (origin.root / running).read_bytes()
    assert scheduled_on(members, task_id(origin.url(later))) == [owner]  # a new task follows the ring
    assert scheduled_on(members, task_id(origin.url(running))) == [other]  # the running one finished there
    assert daemon.proc.log().count("registering the task again") == 1  # it never moved back
