"""Crashes mid-transfer: a parent peer killed, the supernode killed and restarted; downloads still end correct."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fixtures.origin import sha256_file, start_origin, write_random_file
from fixtures.processes import ProcessGroup
from p2p_cluster import Swarm, finish, grpc_healthy

pytestmark = pytest.mark.e2e

MiB = 1 << 20


def test_parent_killed_mid_transfer(process_group: ProcessGroup, tmp_path: Path) -> None:
    """A peer holding the content is SIGKILLed while two peers fetch from it (and from the seed: a parent sends a
    piece to one child at a time, the seed takes another child, see evaluator.rank_of). The children download at 8 MB/s,
    so they are mid-transfer when it dies."""
    size = 64 * MiB
    sha = write_random_file(tmp_path / "content" / "f.bin", size, seed=11)
    origin = start_origin(process_group, tmp_path / "content")
    swarm = Swarm(process_group, tmp_path)
    swarm.start_supernode()
    parent = swarm.start_peer("127.0.0.2", ["--upload-limit", "8M"])
    children = [swarm.start_peer(ip, ["--upload-limit", "0"]) for ip in ("127.0.0.3", "127.0.0.4")]
    url = origin.url("f.bin")
    seeded = swarm.dfget(url, tmp_path / "parent.bin", parent)
    assert seeded.returncode == 0, seeded.stderr
    slow = ("--rate-limit", "8M")
    runs = [swarm.dfget_start(url, tmp_path / f"child{i}.bin", peer, *slow) for i, peer in enumerate(children)]
    time.sleep(2.0)
    if not all(run.poll() is None for run in runs):
        for run in runs:
            finish(run)
        pytest.fail("downloads ended before the parent could be killed")
    parent.process.kill()
    for i, run in enumerate(runs):
        status, _, err = finish(run)
        assert status == 0, err
        assert sha256_file(tmp_path / f"child{i}.bin") == sha
    assert all(peer.process.alive() for peer in children)


def test_supernode_killed_then_restarted(process_group: ProcessGroup, tmp_path: Path) -> None:
    """Killing the supernode mid-transfer sends peers back to the origin; after a restart new tasks work again."""
    size = 64 * MiB
    content = tmp_path / "content"
    sha = write_random_file(content / "slow.bin", size, seed=12)
    after_sha = write_random_file(content / "after.bin", 6 * MiB, seed=13)
    during_sha = write_random_file(content / "during.bin", 5 * MiB + 3, seed=14)
    # 16 MB/s per response: the seed needs about 4 s for the file, so the kill lands mid-transfer.
    origin = start_origin(process_group, content, rate=16_000_000)
    swarm = Swarm(process_group, tmp_path)
    supernode = swarm.start_supernode()
    peers = [swarm.start_peer(ip) for ip in ("127.0.0.2", "127.0.0.3")]
    url = origin.url("slow.bin")
    runs = [swarm.dfget_start(url, tmp_path / f"slow{i}.bin", peer) for i, peer in enumerate(peers)]
    time.sleep(1.5)
    assert all(run.poll() is None for run in runs), "downloads ended before the supernode could be killed"
    supernode.process.kill()
    for i, run in enumerate(runs):
        status, _, err = finish(run)
        assert status == 0, err
        assert sha256_file(tmp_path / f"slow{i}.bin") == sha
    assert all(peer.process.alive() for peer in peers)

    # With the supernode down: --no-back-source fails cleanly; without it the peer goes to the origin itself.
    during_url = origin.url("during.bin")
    refused = swarm.dfget(during_url, tmp_path / "refused.bin", peers[0], "--no-back-source", timeout=120)
    assert refused.returncode != 0
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert not (tmp_path / "refused.bin").exists()
    direct = swarm.dfget(during_url, tmp_path / "during.bin", peers[1], timeout=120)
    assert direct.returncode == 0, direct.stderr
    assert sha256_file(tmp_path / "during.bin") == during_sha

    swarm.start_supernode()
    assert grpc_healthy(swarm.supernode.target if swarm.supernode else "")
    swarm.wait_hosts(len(peers), timeout=30)
    after_url = origin.url("after.bin")
    for i, peer in enumerate(peers):
        result = swarm.dfget(after_url, tmp_path / f"after{i}.bin", peer)
        assert result.returncode == 0, result.stderr
        assert sha256_file(tmp_path / f"after{i}.bin") == after_sha
    task = swarm.task_for_url(after_url)
    assert task.content_length == 6 * MiB
    assert len(swarm.get_task(task.task_id).peers) >= len(peers), "peers did not register with the new supernode"
