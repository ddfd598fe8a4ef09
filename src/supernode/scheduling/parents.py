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

from supernode.read_split import left_to_read
from supernode.resource.peer import Peer
from supernode.resource.registry import can_serve
from supernode.resource.task import Task
from supernode.scheduling import evaluator

# Holders compared once one of them is not sending the piece already; and the most looked at in all. In a hot task
# the first few free holders of a piece either include one not sending it or are all sending it, and so are the
# rest. Looking at every free holder instead: 2,000 peers on one task cost 890 µs of scheduler CPU per report,
# most of it in such choices (158 µs with these bounds; in-process, every report answered in turn).
PARENT_SAMPLE = 8
PARENT_SCAN = 2 * PARENT_SAMPLE
# Holders of a piece looked at, at most, for one in the child's zone (the `nearest` policy, zone_holds).
ZONE_LOOK = 32
# A seed peer reading a task's origin at this share of its upload rate or more keeps its uplink for the first copies
# of the pieces it reads (first_copies_only).
FIRST_COPIES_SHARE = 0.8
# How long a seed peer's own copy may wait for the plain peers (copy_waits): a third of the time a peer waits for
# a piece before it gives up on the swarm and reads the origin itself (PeerContext.stall_timeout, 30 s).
SEED_COPY_PATIENCE_S = 10.0


def choose(
    task: Task,
    child: Peer,
    number: int,
    seed_fanout: int,
    copy_waits: bool = False,
    policy: evaluator.ParentPolicy = evaluator.DEFAULT,
) -> Peer | None:
    """The best free, trusted holder of the piece by the policy's rank (evaluator.rank_of by default): seed peers
    first, then the holders in the order the task keeps, comparing PARENT_SAMPLE of them once one has the best
    rank a holder can have for this child (policy.top: for default, one not sending the piece), and looking at
    PARENT_SCAN at most; a seed peer only while it sends this piece to fewer than seed_fanout children. The holder
    chosen goes to the back of the piece's order.

    A seed peer's own copy comes last. It downloads the pieces other readers read (it is the cluster's cache and
    keeps the whole content). While copy_waits it takes them only from parent hosts sending nothing; otherwise,
    with one piece under way, more only from parent hosts sending nothing at the moment: uplinks that hosts still
    downloading would use carry the cache's copy only when they have nothing else to do, and the one piece keeps
    it moving where every parent stays busy (a seed peer that got nothing for 30 s would read the origin itself).
    Measured (bench/scale_bench.py, 32 MiB, 50 Mbit/s uplinks): before, the seed peer drew 0.6-0.7 F from the
    hosts' uplinks while they downloaded, 0.8 s of every uplink at 4 hosts."""
    chosen: Peer | None = None
    chosen_key: tuple[int, float] | None = None
    looked = 0
    location = child.host.location
    rank = policy.rank
    cache_fill = child.host.seed_peer and (copy_waits or bool(child.outstanding))
    seeds = [] if task.seed_inflight.get(number, 0) >= seed_fanout else free_seeds(task, number)
    if (
        seeds
        and (reading := [s for s in seeds if first_copies_only(task, task.peers[s])])
        and plain_holder(task, number)
    ):
        seeds = [seed_id for seed_id in seeds if seed_id not in reading]
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
        key = rank(
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
        if looked >= PARENT_SAMPLE and chosen_key[0] == policy.top(location):
            break
    if busy:
        task.evict_busy(number, busy)
    if (
        chosen is not None
        and policy.keep_in_zone
        and (zone := evaluator.zone_of(location))
        and evaluator.zone_of(chosen.host.location) != zone
        and zone_holds(task, number, child, zone)
    ):
        return None  # a holder in the child's zone has it: its slot, not another zone's uplink
    if chosen is not None and not chosen.host.seed_peer:
        task.offered(number, chosen.peer_id)
    return chosen


def zone_holds(task: Task, number: int, child: Peer, zone: str) -> bool:
    """True when the piece is in the child's zone or on its way there: a peer there (evaluator.zone_of) that can
    serve (registry.can_serve; not a seed peer, the parent of last resort) holds it, free or busy, or a child there
    fetches it from another zone now (Task.crossing). Looks at ZONE_LOOK of its holders at most, so the cost stays
    bounded: when a hot piece's holders are spread over 4 zones, 32 of them miss the child's zone once in 10,000
    choices."""
    if task.crossing.get((zone, number)):
        return True
    peers = task.peers
    for holder_id in itertools.islice(task.holders[number], ZONE_LOOK):
        holder = peers.get(holder_id)
        if (
            holder is not None
            and holder.host is not child.host  # never its parent (choose), so never worth a wait
            and evaluator.zone_of(holder.host.location) == zone
            and not holder.host.seed_peer
            and can_serve(task, holder)
        ):
            return True
    return False


def first_copies_only(task: Task, seed: Peer) -> bool:
    """True while the seed peer reads the task's origin (all of it, or parts it does not hold yet) at
    FIRST_COPIES_SHARE of its host's upload rate or more, or before that upload rate is measured: its uplink is then
    needed for the first copy of every piece it reads, and a piece a plain peer holds comes from such a holder (free
    now, or later). False until its read rate is known (READ_RATE_PIECES offered after its first). Without the rule a
    holder already sending the piece ranks below the seed peer, and the child after it took the piece from the seed
    peer: 3 hosts pulling 3 x 16 MiB through their mirrors, with registry, seed peer and hosts at 200 Mbit/s, took
    4.14 and 4.15 s with the seed peer sending 1.8 F; with the rule 3.49 and 3.77 s and 1.4-1.5 F (bench/README.md).
    A seed peer reading slower than its uplink (one of a few readers splitting the origin, or behind a slow origin)
    has uplink to spare for second copies and keeps sending them: forbidding them whenever a seed peer read made 8
    hosts with a 200 Mbit/s origin slower."""
    host = seed.host
    if seed.read_rate <= 0 or (host.rate > 0 and seed.read_rate < FIRST_COPIES_SHARE * host.rate):
        return False
    return task.reads_all(seed) or bool(left_to_read(task, seed))


def copy_waits(task: Task, child: Peer, now: float) -> bool:
    """True when the child is a seed peer whose own copy waits: while a plain peer of the task lacks a piece, the
    cluster's cache takes no uplink from the hosts still downloading, except for pieces one peer alone holds (were
    it lost, the origin would be read again), and those only from a parent sending nothing (Scheduler.fill,
    choose); once the plain peers hold everything it copies the rest from them, idle by then. Up to
    SEED_COPY_PATIENCE_S without a piece (hosts that keep arriving, one that stopped short of the whole content):
    then it takes pieces as choose allows until it gets one. Measured (bench/scale_bench.py, 32 MiB, 50 Mbit/s
    uplinks, alternating runs): without the wait the seed peer copied 0.69 F from the hosts' uplinks while they
    downloaded, and 4 hosts took 5.51 s (median of 6) against 5.13 s with it, 8 hosts 6.94 against 6.66 s."""
    return child.host.seed_peer and task.plain_peers_lack_pieces() and now - child.last_piece_at < SEED_COPY_PATIENCE_S


def plain_holder(task: Task, number: int) -> bool:
    """True when a peer other than a seed peer holds the piece and can serve it, now or once its host has a free
    slot (Peer.indexed: not left, distrusted or unreachable)."""
    peers, seeds = task.peers, task.seed_peer_ids
    return any(h not in seeds and (p := peers.get(h)) is not None and p.indexed for h in task.holders[number])


def free_seeds(task: Task, number: int) -> list[str]:
    """The task's free, trusted seed peers that hold the piece (a task has one or a few)."""
    bit = 1 << number
    free = task.free_parents
    return [p for p in task.seed_peer_ids if p in free and task.peers[p].held & bit]
