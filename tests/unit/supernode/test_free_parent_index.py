"""The index of free parents (Task.free_parents, free_counts, free_holders) stays exact while hosts' upload slots
fill and free around every piece they send, and that costs no walk over the pieces a parent holds (no network)."""

from __future__ import annotations

import random
from collections import OrderedDict
from typing import Any

import pytest
from swarm_builder import FAST, PIECE, Swarm

from supernode.resource.host import Host
from supernode.resource.peer import Peer, PeerState
from supernode.resource.piece_counts import PieceCounts
from supernode.resource.registry import Registry
from supernode.resource.task import Task, TaskState
from supernode.scheduling import parents
from supernode.scheduling.scheduler import SEED_FANOUT

PIECES = 40


def test_piece_counts_match_a_count_per_piece() -> None:
    rng = random.Random(5)
    for _ in range(100):
        size = rng.choice([1, 7, 64, 130])
        counts, model = PieceCounts(), [0] * size
        for _ in range(100):
            mask = sum(1 << n for n in range(size) if rng.random() < 0.4)
            if rng.random() < 0.5:
                counts.add(mask)
                model = [c + (mask >> n & 1) for n, c in enumerate(model)]
            elif all(model[n] for n in range(size) if mask >> n & 1):
                counts.sub(mask)
                model = [c - (mask >> n & 1) for n, c in enumerate(model)]
            else:
                with pytest.raises(ValueError):
                    counts.sub(mask)  # a piece not counted: refused, nothing changed
            assert [counts.count(n) for n in range(size)] == model
            assert counts.nonzero == sum(1 << n for n in range(size) if model[n])


def _free(task: Task, peer: Peer) -> bool:
    return (
        peer.held_count > 0
        and peer.state is not PeerState.LEFT
        and peer.peer_id not in task.bad_parents
        and not peer.host.unreachable
        and peer.host.free_slots > 0
    )


def _check(task: Task, child: Peer) -> None:
    """The index against the peers themselves, and a choice for every piece a free parent holds finds one."""
    free = {p.peer_id for p in task.peers.values() if _free(task, p)}
    assert task.free_parents == free
    plain = [p for p in task.peers.values() if p.peer_id in free and not p.host.seed_peer]
    for number in range(PIECES):
        holders = [p.peer_id for p in plain if p.holds(number)]
        assert task.free_counts.count(number) == len(holders)
        if number < len(task.free_holders):
            assert set(holders) <= set(task.free_holders[number])
            assert all(task.peers[p].indexed for p in task.free_holders[number])
        if holders:
            chosen = parents.choose(task, child, number, SEED_FANOUT)
            assert chosen is not None and chosen.peer_id in free


def test_the_index_stays_exact_through_random_events() -> None:
    rng = random.Random(11)
    now = [1000.0]
    registry = Registry(lambda: now[0])
    task = Task("t" * 64, "http://o/x", "", state=TaskState.RUNNING, piece_size=PIECE, piece_count=PIECES)
    registry.add_task(task)
    hosts = [Host(f"h{i}", f"h{i}", "127.0.0.2", 65000 + i, 1, "", 0.0, rate=FAST) for i in range(6)]
    hosts.append(Host("seed", "seed", "127.0.0.3", 65000, 2, "", 0.0, seed_peer=True, rate=FAST))
    for host in hosts:
        registry.add_host(host)
    child_host = Host("child", "child", "127.0.0.4", 65000, 1, "", 0.0, rate=FAST)
    registry.add_host(child_host)
    child = Peer("child", task.task_id, child_host)
    registry.add_peer(task, child)
    serial = 0

    def new_peer() -> None:
        nonlocal serial
        serial += 1
        peer = Peer(f"p{serial}", task.task_id, rng.choice(hosts))
        registry.add_peer(task, peer)

    for _ in range(12):
        new_peer()
    for _ in range(4000):
        peers = [p for p in task.peers.values() if p is not child]
        peer = rng.choice(peers)
        host = rng.choice(hosts)
        event = rng.random()
        if event < 0.30:
            registry.hold(task, peer, rng.randrange(PIECES))
        elif event < 0.33:
            registry.unhold(task, peer, rng.randrange(PIECES))
        elif event < 0.53:
            if host.inflight < host.capacity:
                host.started(PIECE)  # an upload from the host: its slots fill
                registry.refresh_host(host)
        elif event < 0.67:
            host.ended(PIECE, True, now[0] - 0.1, now[0])
            registry.refresh_host(host)
        elif event < 0.69:
            host.unreachable = not host.unreachable
            registry.refresh_host(host)
        elif event < 0.70:
            registry.untrust(task, peer)
        elif event < 0.72:
            peer.state = PeerState.LEFT
            registry.detach_peer(task, peer)
            new_peer()
        else:  # a choice for a piece a free parent holds (it moves busy holders out of the piece's free holders)
            for number in rng.sample(range(PIECES), 8):
                if task.free_counts.count(number):
                    parents.choose(task, child, number, SEED_FANOUT)
        if rng.random() < 0.05:
            _check(task, child)
    _check(task, child)


class _Counted(OrderedDict[str, None]):
    """A piece's free holders that count the entries written and removed."""

    changes = 0

    def __setitem__(self, key: str, value: Any) -> None:
        _Counted.changes += 1
        super().__setitem__(key, value)

    def pop(self, key: str, default: Any = None) -> Any:
        _Counted.changes += 1
        return super().pop(key, default)


def test_a_parents_slots_filling_and_freeing_does_not_walk_the_pieces_it_holds() -> None:
    """A parent holding 512 pieces goes busy and free 100 times, as its host does around every piece it sends:
    the free holders of its pieces are not rewritten each time (before, 512 entries out and in again each time),
    and a choice still finds it whenever it is free."""
    pieces = 512
    swarm = Swarm(pieces, seed_pieces=0)
    parent = swarm.add("parent", range(pieces), slots=1)
    child = swarm.add("child")
    task, registry = swarm.task, swarm.scheduler.registry
    task.free_holders[:] = [_Counted(holders) for holders in task.free_holders]
    _Counted.changes = 0
    host = parent.host
    for turn in range(100):
        for _ in range(host.capacity):
            host.started(PIECE)
        registry.refresh_host(host)
        assert parent.peer_id not in task.free_parents
        assert not registry.servable(task)
        if turn % 10 == 0:  # a choice meets it busy: moved out of that piece's holders until it is free again
            assert parents.choose(task, child, turn, SEED_FANOUT) is None
        for _ in range(host.capacity):
            host.ended(PIECE, True, swarm.clock.now, swarm.clock.now)
        registry.refresh_host(host)
        assert parents.choose(task, child, turn, SEED_FANOUT) is parent
    assert registry.servable(task) == (1 << pieces) - 1
    assert _Counted.changes <= 100
