"""dfinspect against a real supernode after real downloads (two dfdaemons, dfget): tasks, one task's peers and
piece maps by id prefix or URL, hosts, --json; and its one-line errors."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fixtures.origin import start_origin, write_random_file
from fixtures.processes import ProcessGroup, free_port
from p2p_cluster import PeerHandle, Swarm

from dfcommon.pieces import piece_count, piece_size_for

pytestmark = pytest.mark.e2e

MiB = 1 << 20
PIECES = piece_count(10 * MiB, piece_size_for(10 * MiB, MiB))  # 10 MiB cut from a 1 MiB base
PEER_IPS = ["127.0.0.2", "127.0.0.3"]


@dataclass
class Inspected:
    """The swarm after its downloads, and the task ids of its two files."""

    swarm: Swarm
    peers: list[PeerHandle]
    urls: list[str]
    task_ids: list[str]


def dfinspect(target: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run dfinspect against target."""
    argv = [sys.executable, "-m", "dfinspect", "--supernode", target, *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def inspected(module_process_group: ProcessGroup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Inspected]:
    """A supernode and two dfdaemons; both download one file, the first downloads another."""
    base = tmp_path_factory.mktemp("inspect")
    write_random_file(base / "www" / "one.bin", 10 * MiB, seed=21)
    write_random_file(base / "www" / "two.bin", 3 * MiB, seed=22)
    origin = start_origin(module_process_group, base / "www")
    swarm = Swarm(module_process_group, base)
    swarm.start_supernode(["--piece-size", "1MiB"])
    peers = [swarm.start_peer(ip) for ip in PEER_IPS]
    swarm.wait_hosts(len(peers))
    urls = [origin.url("one.bin"), origin.url("two.bin")]
    for i, peer in enumerate(peers):
        done = swarm.dfget(urls[0], base / f"one-{i}.bin", peer, "--quiet")
        assert done.returncode == 0, done.stderr
    done = swarm.dfget(urls[1], base / "two.bin", peers[0], "--quiet")
    assert done.returncode == 0, done.stderr
    yield Inspected(swarm, peers, urls, [swarm.task_for_url(url).task_id for url in urls])


def test_tasks_lists_every_task(inspected: Inspected) -> None:
    target = inspected.swarm.supernode.target  # type: ignore[union-attr]
    shown = dfinspect(target, "tasks")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["TASK", "STATE", "SEED", "PEERS", "SIZE", "URL"]
    rows = {line.split()[-1]: line.split() for line in lines[1:]}
    one = rows[inspected.urls[0]]
    # Peers: the in-process seed peer's and the two hosts'; a task is never SUCCEEDED (each consumer checks it).
    assert one[:5] == [inspected.task_ids[0][:12], "RUNNING", f"{PIECES}/{PIECES}", "3", "10.0"]
    assert rows[inspected.urls[1]][3] == "2"
    listed = json.loads(dfinspect(target, "tasks", "--json").stdout)
    assert sorted(t["task_id"] for t in listed) == sorted(inspected.task_ids)


def test_task_by_prefix_or_url_shows_peers_and_piece_maps(inspected: Inspected) -> None:
    target = inspected.swarm.supernode.target  # type: ignore[union-attr]
    task_id = inspected.task_ids[0]
    for given in (task_id[:8], task_id[:12], task_id, inspected.urls[0]):
        shown = dfinspect(target, "--json", "task", given)
        assert shown.returncode == 0, f"{given}: {shown.stderr}"
        detail = json.loads(shown.stdout)
        assert detail["task"]["task_id"] == task_id
    peers = detail["peers"]
    assert peers[0]["is_seed"] and len(peers) == 3
    addresses = {p["address"] for p in peers[1:]}
    assert addresses == {peer.target for peer in inspected.peers}
    assert {p["hostname"] for p in peers[1:]} == {socket.gethostname()}  # joined from ListHosts
    for peer in peers:
        assert peer["piece_map"] == "#" * PIECES and peer["pieces"] == f"0-{PIECES - 1}"
        assert peer["piece_count"] == PIECES
    # the seed served the first download; the second peer fetched from the seed or the first peer
    assert sum(p["uploads_ok"] for p in peers) >= 2 * PIECES

    text = dfinspect(target, "task", task_id[:10], "--width", "8")
    assert text.returncode == 0, text.stderr
    assert f"task     {task_id}" in text.stdout and f"url      {inspected.urls[0]}" in text.stdout
    rows = [line for line in text.stdout.splitlines() if line.rstrip().endswith("]")]
    assert len(rows) == 3 and all(row.rstrip().endswith("[########]") for row in rows)
    for peer in inspected.peers:
        assert any(peer.target in row and "SUCCEEDED" in row and f"{PIECES}/{PIECES}" in row for row in rows)


def test_hosts(inspected: Inspected) -> None:
    target = inspected.swarm.supernode.target  # type: ignore[union-attr]
    shown = dfinspect(target, "hosts")
    assert shown.returncode == 0, shown.stderr
    for peer in inspected.peers:
        assert peer.target in shown.stdout
    one = json.loads(dfinspect(target, "hosts", PEER_IPS[1], "--json").stdout)
    assert [h["address"] for h in one] == [inspected.peers[1].target]
    prefix = one[0]["host_id"][:6]
    assert [h["host_id"] for h in json.loads(dfinspect(target, "--json", "hosts", prefix).stdout)] == [
        one[0]["host_id"]
    ]


def test_errors_are_one_line(inspected: Inspected) -> None:
    target = inspected.swarm.supernode.target  # type: ignore[union-attr]
    cases = [
        (dfinspect(target, "task", "f" * 64), 1, f"dfinspect: no task matches '{'f' * 64}' on {target}"),
        (dfinspect(target, "task", "0123zz"), 1, "dfinspect: no task matches '0123zz'"),
        (dfinspect(target, "hosts", "10.9.9.9"), 1, "dfinspect: no host matches '10.9.9.9'"),
        (dfinspect(f"127.0.0.1:{free_port()}", "tasks"), 1, "dfinspect: cannot reach the supernode at 127.0.0.1:"),
        (dfinspect(inspected.peers[0].target, "tasks"), 1, "is it a supernode"),
        (dfinspect("nowhere", "tasks"), 2, "dfinspect: error: invalid address 'nowhere'"),
        (dfinspect(target, "task"), 2, "dfinspect: error: the following arguments are required"),
        (dfinspect(target, "tasks", "--tls-cert", "x.pem"), 2, "dfinspect: error: TLS needs --tls-cert"),
    ]
    for done, status, start in cases:
        assert done.returncode == status, (start, done.stderr)
        assert done.stdout == ""
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and start in lines[0], done.stderr
