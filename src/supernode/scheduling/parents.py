"""Which holder sends a piece to a child: the best of a few free, trusted holders, looked at in an order that finds
one not sending the piece yet among the first.

The registry keeps each piece's free holders new ones first, then the one chosen least lately (Task.free_holders,
Task.offered): a holder just chosen for a piece goes to the back, so that the next choice for it looks at others.
Costs are bounded whatever the swarm's size: PARENT_SCAN free holders at most; a busy one met on the way is moved
out of the piece's holders (Task.evict_busy) until its host has a free slot again, so it is met once per time its
slots fill.
"""

from __future__ import annotations

import itertools

from supernode.resource.peer import Peer
from supernode.resource.task import Task
from supernode.scheduling import evaluator

# Holders compared once one of them is not sending the piece already; and the most looked at in all. In a hot task
# the first few free holders of a piece either include one not sending it or are all sending it, and so are the
# rest. Looking at every free holder instead: 2,000 peers on one task cost 890 µs of scheduler CPU per report,
# most of it in such choices (158 µs with these bounds; in-process, every report answered in turn).
PARENT_SAMPLE = 8
PARENT_SCAN = 2 * PARENT_SAMPLE


def choose(task: Task, child: Peer, number: int, seed_fanout: int) -> Peer | None:
    """The best free, trusted holder of the piece (evaluator.rank_of): seed peers first, then the holders in the order
    the task keeps, comparing PARENT_SAMPLE of them once one is not sending the piece, and looking at PARENT_SCAN
    at most; a seed peer only while it sends this piece to fewer than seed_fanout children. The holder chosen goes
    to the back of the piece's order.

    A seed peer's own copy comes last. It downloads the pieces other readers read (it is the cluster's cache and
    keeps the whole content), but with one piece under way it takes more only from parent hosts sending nothing
    at the moment: uplinks that hosts still downloading would use carry the cache's copy only when they have
    nothing else to do, and the one piece keeps it moving where every parent stays busy (a seed peer that got
    nothing for 30 s would read the origin itself). Measured (bench/scale_bench.py, 32 MiB, 50 Mbit/s uplinks):
    before, the seed peer drew 0.6-0.7 F from the hosts' uplinks while they downloaded, 0.8 s of every uplink
    at 4 hosts."""
    chosen: Peer | None = None
    chosen_key: tuple[int, float] | None = None
    looked = 0
    location = child.host.location
    cache_fill = child.host.seed_peer and bool(child.outstanding)
    seeds = [] if task.seed_inflight.get(number, 0) >= seed_fanout else free_seeds(task, number)
    free = task.free_parents
    busy: list[str] = []
    scanned = 0
    for parent_id in itertools.chain(seeds, task.free_holders[number]):
        if parent_id not in free:
            busy.append(parent_id)  # its host has no free slot: moved out, once per time its slots fill
            continue
        if scanned >= PARENT_SCAN:
            break
        scanned += 1
        if parent_id == child.peer_id:
            continue
        parent = task.peers[parent_id]
        host = parent.host
        if host is child.host or (cache_fill and host.inflight):
            continue
        key = evaluator.rank_of(
            host.free_slots,
            host.capacity,
            parent.uploads_ok,
            parent.uploads_failed,
            host.location,
            host.seed_peer,
            number in parent.serving,
            location,
        )
        if chosen_key is None or key > chosen_key:
            chosen, chosen_key = parent, key
        looked += 1
        if looked >= PARENT_SAMPLE and chosen_key[0] == evaluator.IDLE_PEER:
            break
    if busy:
        task.evict_busy(number, busy)
    if chosen is not None and not chosen.host.seed_peer:
        task.offered(number, chosen.peer_id)
    return chosen


def free_seeds(task: Task, number: int) -> list[str]:
    """The task's free, trusted seed peers that hold the piece (a task has one or a few)."""
    bit = 1 << number
    free = task.free_parents
    return [p for p in task.seed_peer_ids if p in free and task.peers[p].held & bit]
