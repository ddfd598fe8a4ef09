"""The `nearest` parent policy keeps a piece in a zone once it is there or on its way: on a real Scheduler, children in
zone z1 with the piece held only in z2 (no network).

One child fetches it across; the others wait for it rather than fetch it across too, and take it from that child
once it holds it. A crossing that fails lets the next child cross. The default policy sends every child across."""

from __future__ import annotations

import pytest
from swarm_builder import PIECE, Swarm, pairs

from supernode.resource.peer import Peer
from supernode.resource.piece import Failure, PieceMeta, PieceReport
from supernode.scheduling.evaluator import DEFAULT, NEAREST, ParentPolicy


def across(policy: ParentPolicy) -> Swarm:
    """Piece 0 held by one peer in z2 (slots for many children), nothing in z1 yet."""
    swarm = Swarm(1, seed_pieces=0, policy=policy)
    swarm.task.pieces[0] = PieceMeta(0, 0, PIECE, f"sha256:{0:064x}")
    swarm.add("far", [0], slots=8, location="r1|z2|k1")
    return swarm


def test_nearest_sends_a_piece_across_once_then_passes_it_on_within_the_zone() -> None:
    swarm = across(NEAREST)
    first = swarm.add("c1", location="r1|z1|k1")
    assert pairs(swarm.scheduler.connect(first, 1)) == [(0, "far")]
    second = swarm.add("c2", location="r1|z1|k7")
    assert swarm.scheduler.connect(second, 1) == []  # waits: the piece is on its way into z1
    assert swarm.task.crossing == {("r1|z1", 0): 1}
    woken = swarm.scheduler.report(first, [PieceReport(0, "far", True)])
    assert pairs(woken) == [(0, "c1")]  # from the zone's new holder
    assert woken[0].child_id == "c2"
    assert swarm.task.crossing == {}
    swarm.scheduler.report(second, [PieceReport(0, "c1", True)])
    delivered = swarm.scheduler.book.delivered_bytes  # the supernode's dandelion_piece_bytes_delivered
    assert delivered == {"within_zone": PIECE, "between_zones": PIECE, "no_zone": 0}


def test_nearest_lets_the_next_child_cross_when_a_crossing_fails() -> None:
    swarm = across(NEAREST)
    first = swarm.add("c1", location="r1|z1")
    swarm.scheduler.connect(first, 1)
    second = swarm.add("c2", location="r1|z1")
    assert swarm.scheduler.connect(second, 1) == []
    woken = swarm.scheduler.report(first, [PieceReport(0, "far", False, Failure.LOCAL)])  # c1 could not store it
    assert ("c2", "far") in [(a.child_id, a.parent.peer_id) for a in woken]


def test_nearest_waits_for_a_busy_holder_in_the_zone_and_default_does_not() -> None:
    for policy, parent in ((NEAREST, None), (DEFAULT, "far")):
        swarm = across(policy)
        near = swarm.add("near", [0], slots=1, location="r1|z1")
        for _ in range(near.host.capacity):
            near.host.started(PIECE)  # every slot of the holder in z1 busy
        swarm.scheduler.registry.refresh_host(near.host)
        child = swarm.add("child", location="r1|z1")
        got = pairs(swarm.scheduler.connect(child, 1))
        assert got == ([] if parent is None else [(0, parent)]), policy.name


@pytest.mark.parametrize("location", ["", "r1"])
def test_a_child_without_a_zone_is_never_kept_waiting(location: str) -> None:
    swarm = across(NEAREST)
    first = swarm.add("c1", location=location)
    swarm.scheduler.connect(first, 1)
    assert pairs(swarm.scheduler.connect(swarm.add("c2", location=location), 1)) == [(0, "far")]
    swarm.scheduler.report(first, [PieceReport(0, "far", True)])
    assert swarm.scheduler.book.delivered_bytes == {"within_zone": 0, "between_zones": 0, "no_zone": PIECE}


def test_a_holder_on_the_childs_own_host_keeps_it_from_nothing() -> None:
    """Another peer of the task on the child's host holds the piece: it is never the child's parent, so the child
    takes the piece from the other zone rather than wait for it."""
    swarm = across(NEAREST)
    twin = swarm.add("twin", [0], location="r1|z1")
    child = Peer("child", swarm.task.task_id, twin.host)
    swarm.scheduler.add_peer(swarm.task, child)
    assert pairs(swarm.scheduler.connect(child, 1)) == [(0, "far")]
