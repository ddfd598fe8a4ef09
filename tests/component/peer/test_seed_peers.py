"""Seed peers: dfdaemons started with --seed read content from the origin for the swarm.

A real supernode, two real seed dfdaemons and three plain ones, and an origin that counts the bytes it sends. The
supernode picks a task's seed peer by rendezvous hashing on the task id; the seed peer reads the origin and offers
each piece as it stores it; the plain peers fetch every piece from the swarm. A seed peer killed mid-task is
replaced by the other; a restarted supernode finds the content in the seed peer's cache without the origin.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from dandelion.common.v1 import common_pb2
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from fixtures.origin import IN_FLIGHT, OriginServer, start_origin, write_random_file
from fixtures.processes import ManagedProcess, ProcessGroup, console_script, free_port
from peer_procs import Daemon, dfget, start_daemon

from dfcommon.identity import task_id
from dfcommon.pieces import piece_size_for
from supernode.seed_peers import rendezvous_score

SIZE = 6 * (4 << 20) + 321
SEED_IPS = ("127.0.0.61", "127.0.0.62")


@dataclass
class Cluster:
    origin: OriginServer
    slow_origin: OriginServer  # the same files at 3 MB/s per response
    supernode: ManagedProcess
    supernode_port: int
    seeds: list[Daemon]
    peers: list[Daemon]
    digests: dict[str, str]
    work: Path
    group: ProcessGroup

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.supernode_port}"

    def logs(self) -> str:
        parts = [f"--- supernode\n{self.supernode.tail(40)}"]
        parts += [f"--- {d.proc.name}\n{d.proc.tail(25)}" for d in (*self.seeds, *self.peers)]
        return "\n".join(parts)

    def chosen_seed(self, url: str, digest: str) -> Daemon:
        """The seed peer rendezvous hashing picks for the content (the supernode's own choice, recomputed)."""
        tid = task_id(url, digest, (), "")
        return max(self.seeds, key=lambda seed: rendezvous_score(tid, f"{seed.ip}:{seed.port}"))


def start_supernode(group: ProcessGroup, work: Path, port: int) -> ManagedProcess:
    supernode = group.start(
        "supernode",
        [
            console_script("supernode"),
            *("--listen", f"127.0.0.1:{port}", "--data-dir", str(work / "sn"), "--advertise-ip", "127.0.0.1"),
            *("--heartbeat-interval", "1000"),
            "--no-seed-peer",  # the seed peers are the two dfdaemons --seed
        ],
    )
    supernode.wait_for_tcp("127.0.0.1", port, timeout=30)
    return supernode


@pytest.fixture(scope="module")
def cluster(module_process_group: ProcessGroup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    work = tmp_path_factory.mktemp("seed-peers")
    digests = {}
    for index, name in enumerate(("a.bin", "b.bin", "c.bin", "d.bin", "e.bin")):
        digests[name] = "sha256:" + write_random_file(work / "origin" / name, SIZE + index, seed=60 + index)
    origin = start_origin(module_process_group, work / "origin")
    slow_origin = start_origin(module_process_group, work / "origin", rate=3_000_000, name="slow-origin")
    port = free_port("127.0.0.1")
    supernode = start_supernode(module_process_group, work, port)
    addr = f"127.0.0.1:{port}"
    seeds = [start_daemon(module_process_group, work, f"seed{i}", ip, addr, "--seed") for i, ip in enumerate(SEED_IPS)]
    peers = [start_daemon(module_process_group, work, f"peer{i}", f"127.0.0.{70 + i}", addr) for i in (1, 2, 3)]
    for seed in seeds:
        seed.proc.wait_until(lambda s=seed: "seed peer taking orders" in s.proc.log(), "seed peer's order stream")
    yield Cluster(origin, slow_origin, supernode, port, seeds, peers, digests, work, module_process_group)


def done_line(daemon: Daemon) -> tuple[int, int]:
    """(bytes from peers, bytes from origin) of the daemon's last finished download."""
    found = re.findall(r"done: (\d+) bytes, (\d+) from peers, (\d+) from origin", daemon.proc.log())
    assert found, daemon.proc.tail()
    _, peers, origin = found[-1]
    return int(peers), int(origin)


def fetch_all(cluster: Cluster, origin: OriginServer, name: str, peers: list[Daemon], out: Path, digest: bool) -> None:
    """dfget the file on every peer at once; every copy is correct."""
    extra = ("--digest", cluster.digests[name]) if digest else ()
    with concurrent.futures.ThreadPoolExecutor(len(peers)) as pool:
        jobs = [
            pool.submit(dfget, origin.url(name), "-o", str(out / f"{name}.{i}"), "--daemon", d.endpoint, *extra)
            for i, d in enumerate(peers)
        ]
        results = [job.result() for job in jobs]
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results] + [cluster.logs()]
    data = (origin.root / name).read_bytes()
    for i in range(len(peers)):
        assert (out / f"{name}.{i}").read_bytes() == data


@pytest.mark.parametrize("digest", [True, False], ids=["with-digest", "without-digest"])
def test_the_seed_peer_hashing_picks_reads_the_origin_once_for_the_swarm(
    cluster: Cluster, tmp_path: Path, digest: bool
) -> None:
    name = "a.bin" if digest else "b.bin"
    cluster.origin.reset()
    fetch_all(cluster, cluster.origin, name, cluster.peers, tmp_path, digest)
    size = (cluster.origin.root / name).stat().st_size
    url = cluster.origin.url(name)
    chosen = cluster.chosen_seed(url, cluster.digests[name] if digest else "")
    tid = task_id(url, cluster.digests[name] if digest else "", (), "")
    assert f"seed order task={tid[:12]}" in chosen.proc.log(), cluster.logs()
    # A seed peer whose read was split copies the rest once the hosts hold everything: it may finish after them.
    done = re.compile(rf"task={tid[:12]}\S* done: ")
    chosen.proc.wait_until(lambda: done.search(chosen.proc.log()) is not None, "the seed peer's done line", timeout=30)
    lines = [done_line(daemon) for daemon in [chosen, *cluster.peers]]
    assert all(sum(line) == size for line in lines), lines
    assert lines[0][1] > 0, "the chosen seed peer read the origin"
    if lines[0] == (0, size):  # it read all of it: once, and every plain peer got every piece from the swarm
        assert cluster.origin.bytes_served(name) == size, cluster.logs()
        assert all(line == (size, 0) for line in lines[1:]), lines
    else:
        # A seed peer slower than the origin (a loaded machine) had the rest of its read given to plain peers, for
        # content with a digest only: each piece was stored from the origin once, and what the seed peer's body
        # had in flight past the cut (its read-ahead and both ends' socket buffers) was sent twice
        # (docs/protocol.md, "Several readers").
        assert digest, lines
        assert sum(origin for _, origin in lines) == size, lines
        assert cluster.origin.bytes_served(name) <= size + IN_FLIGHT, cluster.logs()
    other = next(seed for seed in cluster.seeds if seed is not chosen)
    assert tid[:12] not in other.proc.log(), "the other seed peer was not asked"
    assert f"seed fetch task={tid[:12]}" not in cluster.supernode.log(), "the supernode itself read nothing"


def test_a_seed_peer_killed_mid_task_is_replaced_by_the_next_one(cluster: Cluster, tmp_path: Path) -> None:
    """A 3 MB/s origin (~8 s for the file): the chosen seed peer is SIGKILLed once it has offered a piece; the other
    seed peer reads what nobody holds, and every download finishes correct."""
    name = "c.bin"
    url, digest = cluster.slow_origin.url(name), cluster.digests[name]
    chosen = cluster.chosen_seed(url, digest)
    other = next(seed for seed in cluster.seeds if seed is not chosen)
    tid = task_id(url, digest, (), "")
    cluster.slow_origin.reset()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        jobs = [
            pool.submit(
                dfget, url, "-o", str(tmp_path / f"c{i}.bin"), "--daemon", d.endpoint, "--digest", digest, timeout=120
            )
            for i, d in enumerate(cluster.peers[:2])
        ]
        chosen.proc.wait_until(
            lambda: re.search(rf"task={tid[:12]}\S* reading the origin for the swarm", chosen.proc.log()) is not None,
            "the chosen seed peer reads",
            timeout=30,
        )
        deadline = time.monotonic() + 30
        while cluster.slow_origin.bytes_served(name) < SIZE / 4:  # a few pieces read and offered, by however many
            assert time.monotonic() < deadline, cluster.logs()
            time.sleep(0.05)
        killed_at = time.monotonic()
        chosen.proc.kill()
        results = [job.result() for job in jobs]
        finished = time.monotonic() - killed_at
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results] + [cluster.logs()]
    data = (cluster.slow_origin.root / name).read_bytes()
    assert all((tmp_path / f"c{i}.bin").read_bytes() == data for i in range(2))
    assert f"seed order task={tid[:12]}" in other.proc.log(), cluster.logs()
    sent = cluster.slow_origin.bytes_served(name)
    print(f"origin sent {sent / len(data):.2f}x the file; downloads finished {finished:.1f}s after the kill")
    # What the killed seed had read and offered stays in the swarm; at most what it had in flight is read again.
    assert sent <= len(data) + 2 * (4 << 20), cluster.logs()
    # Restart the killed seed peer for the tests after this one.
    index = cluster.seeds.index(chosen)
    cluster.seeds[index] = start_daemon(
        cluster.group, cluster.work, f"seed{index}", chosen.ip, cluster.addr, "--seed", port=chosen.port
    )


def test_a_restarted_supernode_gets_the_content_from_the_seed_peers_cache(cluster: Cluster, tmp_path: Path) -> None:
    """The supernode forgets everything on a restart; the seed peer ordered for content it holds offers its cached
    copy, and the origin is not read again."""
    name = "d.bin"
    url, digest = cluster.origin.url(name), cluster.digests[name]
    fetch_all(cluster, cluster.origin, name, cluster.peers[:1], tmp_path, True)
    chosen = cluster.chosen_seed(url, digest)
    assert done_line(chosen)[1] == SIZE + 3, cluster.logs()
    cluster.supernode.stop()
    cluster.supernode = start_supernode(cluster.group, cluster.work, cluster.supernode_port)
    # The new supernode's log (appended to the old one) names both seed peers, and every plain peer: a dfdaemon whose
    # only supernode is still in its reconnect back-off reads the origin itself, here or in the tests after this one
    # (the preheat test's download on peers[0] read the origin again once, on a loaded machine, without this wait).
    lines = [f"seed peer takes orders host=\\S+ addr={re.escape(seed.ip)}:{seed.port}" for seed in cluster.seeds]
    lines += [f"host registered host=\\S+ name=\\S+ addr={re.escape(p.ip)}:{p.port} " for p in cluster.peers]
    for line in lines:
        cluster.supernode.wait_until(
            lambda line=line: re.search(line, cluster.supernode.log().rsplit("start supernode", 1)[-1]) is not None,
            "the seed peers take orders again and the peers are registered",
            30,
        )
    cluster.origin.reset()
    fetch_all(cluster, cluster.origin, name, cluster.peers[1:], tmp_path, True)
    assert cluster.origin.bytes_served(name) == 0, cluster.logs()
    tid = task_id(url, digest, (), "")
    assert f"task={tid} offered to the swarm from the local cache" in chosen.proc.log(), cluster.logs()
    for peer in cluster.peers[1:]:
        assert done_line(peer) == (SIZE + 3, 0)


def test_preheat_loads_a_seed_peers_cache(cluster: Cluster, tmp_path: Path) -> None:
    """PreheatTask returns once the chosen seed peer holds the content; a later download reads no origin."""
    name = "e.bin"
    url, digest = cluster.origin.url(name), cluster.digests[name]
    cluster.origin.reset()
    with grpc.insecure_channel(cluster.addr) as channel:
        stub = scheduler_pb2_grpc.SchedulerServiceStub(channel)
        answer = stub.PreheatTask(
            scheduler_pb2.PreheatTaskRequest(url_meta=common_pb2.UrlMeta(url=url, digest=digest)), timeout=60
        )
    assert answer.task.task_id == task_id(url, digest, (), "")
    chosen = cluster.chosen_seed(url, digest)
    assert done_line(chosen) == (0, SIZE + 4), cluster.logs()
    assert cluster.origin.bytes_served(name) == SIZE + 4
    fetch_all(cluster, cluster.origin, name, cluster.peers[:1], tmp_path, True)
    assert cluster.origin.bytes_served(name) == SIZE + 4, "read once, by the seed peer"
    assert done_line(cluster.peers[0]) == (SIZE + 4, 0)


def test_a_peer_reading_for_the_swarm_cuts_at_the_supernodes_piece_size(
    process_group: ProcessGroup, tmp_path: Path
) -> None:
    """supernode --piece-size reaches the reader (BackToSource.piece_size): pieces cut from a 128 KiB base, not from
    the peer's own 4 MiB."""
    length = 5 * (1 << 20) + 3
    assert piece_size_for(length, 128 << 10) != piece_size_for(length)
    digest = "sha256:" + write_random_file(tmp_path / "origin" / "f.bin", length, seed=5)
    origin = start_origin(process_group, tmp_path / "origin")
    port = free_port("127.0.0.1")
    supernode = process_group.start(
        "sn-128kib",
        [
            console_script("supernode"),
            *("--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "sn"), "--advertise-ip", "127.0.0.1"),
            *("--piece-size", "128KiB"),
        ],
    )
    supernode.wait_for_tcp("127.0.0.1", port, timeout=30)
    daemon = start_daemon(process_group, tmp_path, "reader", "127.0.0.79", f"127.0.0.1:{port}")
    done = dfget(origin.url("f.bin"), "-o", str(tmp_path / "out"), "--daemon", daemon.endpoint, "--digest", digest)
    assert done.returncode == 0, done.stderr + daemon.proc.tail()
    answered = rf"reader answered task=\w+ length={length} piece_size={piece_size_for(length, 128 << 10)}\b"
    assert re.search(answered, supernode.log()), supernode.tail()


def test_dfinspect_names_the_seed_peers(cluster: Cluster) -> None:
    shown = subprocess.run(
        [console_script("dfinspect"), "--supernode", cluster.addr, "hosts", "--json"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert shown.returncode == 0, shown.stderr
    hosts = json.loads(shown.stdout)
    seeds = {h["address"] for h in hosts if h["seed"]}
    assert seeds == {f"{s.ip}:{s.port}" for s in cluster.seeds}
    text = subprocess.run(
        [console_script("dfinspect"), "--supernode", cluster.addr, "hosts"], capture_output=True, text=True, timeout=30
    ).stdout
    assert text.count("seed peer") == len(cluster.seeds), text
