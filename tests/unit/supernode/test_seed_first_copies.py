"""A seed peer that reads the origin about as fast as its uplink sends keeps that uplink for the first copies of
the pieces it reads: a piece a plain host holds comes from that host, busy or not, or the child waits for it. Slower
readers, seed peers done reading, and pieces no plain host holds are served as before. Each row builds the holders
of piece 0 on a real Scheduler and asks parents.choose, the function the scheduler calls."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from swarm_builder import PIECE, Swarm

from supernode.resource.peer import READ_RATE_PIECES, Peer, PeerState
from supernode.scheduling import parents
from supernode.scheduling.scheduler import SEED_FANOUT

UPLINK = 25e6  # the seed peer's upload rate, bytes/s (200 Mbit/s)
SLOTS = 2  # upload slots of the holder's host: 8 pieces at once


@dataclass(frozen=True)
class Row:
    """What the scheduler knows when a new child asks for piece 0."""

    read_rate: float = UPLINK  # the seed peer's rate reading the origin (0: not known yet)
    uplink: float = UPLINK  # its host's measured upload rate (0: not measured yet)
    reads: str = "all"  # "all": the task's reader of all of it; "part": a range reader of pieces 0-3; "done"
    holder: str = "busy"  # host h1 holding piece 0: "busy" (sending it to another child), "full" (no free slot),
    # "unreachable" (a child could not reach it), "distrusted" (it served bad bytes), "none" (no plain host holds it)


def chosen(row: Row) -> str | None:
    swarm = Swarm(4, seed_pieces=1, rate=row.uplink)
    task, seed = swarm.task, swarm.seed
    if row.reads == "all":
        task.source_peer_id = seed.peer_id
    elif row.reads == "part":
        task.range_readers[seed.peer_id] = ((0, 3),)
    else:
        task.source_peer_id = seed.peer_id
        swarm.scheduler.set_state(seed, PeerState.SUCCEEDED)
    seed.read_rate = row.read_rate
    if row.holder != "none":
        holder = swarm.add("h1", [0], slots=SLOTS)
        if row.holder == "busy":
            holder.serving[0] = 1
        elif row.holder == "full":
            for _ in range(holder.host.capacity):
                holder.host.started(PIECE)
            swarm.scheduler.registry.refresh_host(holder.host)
        elif row.holder == "unreachable":
            swarm.scheduler.health.unreachable(holder.host)
            swarm.scheduler.registry.refresh_host(holder.host)
        else:
            swarm.scheduler.distrust(task, holder)
    child = swarm.add("child")
    parent = parents.choose(task, child, 0, SEED_FANOUT)
    return None if parent is None else parent.peer_id


@pytest.mark.parametrize(
    ("row", "winner"),
    [
        # Reading at its uplink's rate: the holder sends the piece even while it sends it to another child ...
        pytest.param(Row(), "h1", id="reads-at-uplink-rate-busy-holder-sends"),
        # ... and with no free slot the child waits for it, rather than take the seed peer's uplink.
        pytest.param(Row(holder="full"), None, id="reads-at-uplink-rate-child-waits"),
        pytest.param(Row(read_rate=2 * UPLINK), "h1", id="reads-faster-than-uplink"),
        pytest.param(Row(reads="part"), "h1", id="range-reader-with-pieces-left"),
        pytest.param(Row(uplink=0.0), "h1", id="uplink-not-measured-yet"),
        # The first copy of a piece only the seed peer holds comes from the seed peer.
        pytest.param(Row(holder="none"), "seed", id="first-copy-from-seed"),
        # A holder that cannot serve at all does not count: the child does not wait for it.
        pytest.param(Row(holder="unreachable"), "seed", id="holder-unreachable"),
        pytest.param(Row(holder="distrusted"), "seed", id="holder-distrusted"),
        # A seed peer reading well below its uplink's rate has uplink to spare: it is the second source as before.
        pytest.param(Row(read_rate=UPLINK / 2), "seed", id="slow-reader-seed-before-busy-holder"),
        pytest.param(Row(read_rate=UPLINK / 2, holder="full"), "seed", id="slow-reader-serves-when-holder-full"),
        pytest.param(Row(read_rate=0.0), "seed", id="read-rate-not-known-yet"),
        pytest.param(Row(reads="done"), "seed", id="done-reading"),
    ],
)
def test_seed_peer_second_copies(row: Row, winner: str | None) -> None:
    assert chosen(row) == winner


def test_a_range_reader_that_read_its_part_serves_second_copies() -> None:
    swarm = Swarm(4, seed_pieces=4, rate=UPLINK)
    swarm.task.range_readers[swarm.seed.peer_id] = ((0, 3),)
    swarm.seed.read_rate = UPLINK
    assert not parents.first_copies_only(swarm.task, swarm.seed)


def test_read_rate_is_timed_from_the_first_offer() -> None:
    peer = Peer("p", "t" * 64, Swarm(1).seed_host)
    peer.count_read(3, PIECE, now=10.0)  # the first batch (with the origin's answer) starts the clock only
    assert (peer.read_since, peer.read_rate) == (10.0, 0.0)
    peer.count_read(READ_RATE_PIECES - 1, PIECE, now=11.0)
    assert peer.read_rate == 0.0  # too few pieces for a rate
    peer.count_read(1, PIECE, now=12.0)
    assert peer.read_rate == READ_RATE_PIECES * PIECE / 2.0
    peer.count_read(0, PIECE, now=20.0)  # nothing offered: nothing changes
    assert peer.read_rate == READ_RATE_PIECES * PIECE / 2.0
    peer.restart_read(now=30.0)
    assert (peer.read_told, peer.read_since, peer.read_pieces, peer.read_rate) == (30.0, 0.0, 0, 0.0)
