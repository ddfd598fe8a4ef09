"""Seed peers: the order stream, the choice of a task's seed peer by rendezvous hashing, and its replacement."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from dfcommon.content import ContentRequest
from dfcommon.errors import FailedPrecondition
from supernode.config import SupernodeConfig
from supernode.hosts import HostSpec
from supernode.readers import OriginAnswer
from supernode.resource.host import Host
from supernode.resource.peer import PeerState
from supernode.resource.piece import PieceReport
from supernode.seed_peers import ORDER_TIMEOUT_S, SeedOrder, SeedPeers, rendezvous_score
from supernode.streams import Assigned, GoToSource, StreamEvent
from supernode.swarm import Swarm

PIECE = 64 * 1024
LENGTH = 8 * PIECE


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def host(n: int) -> Host:
    return Host(f"h{n}", "seed", f"127.0.0.{n}", 65000, 8, "", 0.0, seed_peer=True)


def drain(queue: asyncio.Queue[SeedOrder | None] | asyncio.Queue[StreamEvent]) -> list[object]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


def test_rendezvous_spreads_tasks_and_moves_only_a_lost_seeds_tasks() -> None:
    seeds = [host(n) for n in (1, 2, 3, 4)]
    tasks = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(2000)]

    def owner(tid: str, among: list[Host]) -> str:
        return max(among, key=lambda h: rendezvous_score(tid, h.address)).address

    before = {tid: owner(tid, seeds) for tid in tasks}
    counts = [sum(1 for o in before.values() if o == s.address) for s in seeds]
    assert min(counts) > 400, counts  # about a quarter each
    after = {tid: owner(tid, seeds[1:]) for tid in tasks}
    moved = [tid for tid in tasks if before[tid] != after[tid]]
    assert all(before[tid] == seeds[0].address for tid in moved), "only the lost seed peer's tasks move"


def test_an_order_goes_to_the_best_seed_then_the_next_when_overdue() -> None:
    clock = Clock()
    seeds = SeedPeers(clock)
    queues = {h.address: seeds.open(h) for h in (host(1), host(2))}
    tid = "t" * 64
    request = ContentRequest(url="http://o/x", headers={"Authorization": "Bearer s"})
    first = seeds.order(tid, request)
    assert first is not None and first.address == seeds.ring(tid)[0].address
    (order,) = drain(queues[first.address])
    assert order == SeedOrder(tid, request)  # the headers go with the order, for the origin only
    assert seeds.pending(tid) and not seeds.overdue()
    clock.now += ORDER_TIMEOUT_S
    assert seeds.overdue() == [tid] and not seeds.pending(tid)
    second = seeds.order(tid, None)
    assert second is not None and second.address != first.address
    clock.now += ORDER_TIMEOUT_S
    assert seeds.order(tid, None) is None, "every seed peer was tried"


def test_a_registration_fulfils_the_order_and_a_lost_seed_gives_its_orders_back() -> None:
    seeds = SeedPeers(Clock())
    one, two = host(1), host(2)
    seeds.open(one), seeds.open(two)
    a, b = "a" * 64, "b" * 64
    for tid in (a, b):
        seeds.order(tid, ContentRequest(url=f"http://o/{tid[0]}"))
    owner = {tid: seeds.orderings[tid].address for tid in (a, b)}
    registered = next(h for h in (one, two) if h.address == owner[a])
    seeds.registered(a, registered)
    assert not seeds.pending(a)
    withdrawn = seeds.withdraw(registered)
    assert a not in withdrawn  # it registered: its reads are the readers' business now
    assert withdrawn == ([b] if owner[b] == registered.address else [])
    assert registered.host_id not in seeds.seeds


def swarm_with_seed_peers(
    tmp_path: Path, count: int
) -> tuple[Swarm, list[str], dict[str, asyncio.Queue[SeedOrder | None]]]:
    swarm = Swarm(SupernodeConfig(data_dir=tmp_path, advertise_ip="127.0.0.1"))
    ids = [swarm.register_host(HostSpec("s", f"127.0.0.{10 + n}", 65000, 8, "", seed=True)) for n in range(count)]
    return swarm, ids, {hid: swarm.hosts.open_orders(hid) for hid in ids}


async def test_content_without_digest_is_read_by_a_seed_peer_and_its_pieces_offered(tmp_path: Path) -> None:
    swarm, seed_ids, queues = swarm_with_seed_peers(tmp_path, 2)
    plain = swarm.register_host(HostSpec("p", "127.0.0.2", 65000, 8, ""))
    request = ContentRequest(url="http://o/file")
    task, peer = await swarm.register_task(plain, request)
    assert peer.state is PeerState.RUNNING, "a plain peer never reads content without a digest"
    (ordered,) = [hid for hid in seed_ids if drain(queues[hid])]
    seed_task, seed_peer = await swarm.register_task(ordered, request)
    assert seed_task is task and seed_peer.state is PeerState.BACK_TO_SOURCE
    outbox = swarm.open_stream(peer.peer_id, 4, [])
    seed_box = swarm.open_stream(seed_peer.peer_id, 4, [], OriginAnswer(LENGTH, PIECE))
    assert any(isinstance(e, GoToSource) and e.offer for e in drain(seed_box))
    swarm.stream_update(seed_peer.peer_id, seed_box, 0, [PieceReport(0, "", True, digest="blake3:" + "0" * 64)])
    assigned = [a for e in drain(outbox) if isinstance(e, Assigned) for a in e.assignments]
    assert [(a.piece.number, a.parent.peer_id) for a in assigned] == [(0, seed_peer.peer_id)], "offered at once"


async def test_an_order_stream_needs_a_seed_peer_and_its_end_drops_the_host(tmp_path: Path) -> None:
    swarm, seed_ids, queues = swarm_with_seed_peers(tmp_path, 1)
    plain = swarm.register_host(HostSpec("p", "127.0.0.2", 65000, 8, ""))
    with pytest.raises(FailedPrecondition):
        swarm.hosts.open_orders(plain)
    swarm.hosts.close_orders(seed_ids[0], queues[seed_ids[0]])
    assert seed_ids[0] not in swarm.scheduler.hosts
    assert not swarm.seed_peers.up


def test_a_registered_seed_peer_gets_the_orders_given_before_its_stream_opened() -> None:
    seeds = SeedPeers(Clock())
    seed = host(1)
    seeds.add(seed)  # registered; its order stream opens a moment later
    assert seeds.up
    tid = "c" * 64
    assert seeds.order(tid, ContentRequest(url="http://o/c")) is seed
    queue = seeds.open(seed)
    assert [o.task_id for o in drain(queue) if isinstance(o, SeedOrder)] == [tid]
    assert seeds.close(seed.host_id, queue) and seeds.up  # the stream ended: the caller drops the host
    seeds.end(seed.host_id)
    assert not seeds.up
