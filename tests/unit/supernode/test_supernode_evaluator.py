"""Parent choice as tables: free slots, success rate, locality, seed after idle peers, busy peers last, and parents
that cannot serve left out; and the `nearest` policy, where the holders nearest the child come first. Each row builds
the holders of one piece on a real Scheduler and asks parents.choose, the function the scheduler calls, which holder
sends the piece to a new child."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from swarm_builder import PIECE, Swarm

from supernode.resource.piece import PieceMeta
from supernode.scheduling import parents
from supernode.scheduling.evaluator import DEFAULT, NEAREST, POLICIES, ParentPolicy, locality, success_rate
from supernode.scheduling.parents import PARENT_SAMPLE, PARENT_SCAN
from supernode.scheduling.scheduler import SEED_FANOUT

SLOTS = 2  # upload slots per holder's host: 8 pieces at once (PIECES_PER_SLOT 4)


@dataclass(frozen=True)
class Holder:
    """A holder of piece 0 and what the scheduler knows of it."""

    free: int = 4  # pieces its host can take on now, of 8
    ok: int = 0
    failed: int = 0
    loc: str = ""
    seed: bool = False  # the task's seed peer
    bad: bool = False  # served bytes that did not match
    sending: bool = False  # sends piece 0 to another child now


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("r1|z1|k1", "r1|z1|k1", 1.0),
        ("r1|z1|k1", "r1|z1|k2", 2 / 3),
        ("r1|z1|k1", "r1|z2|k1", 1 / 3),
        ("r1|z1|k1", "r2|z1|k1", 0.0),
        ("", "r1", 0.0),
        ("r1", "r1|z1", 1 / 3),
    ],
)
def test_locality(a: str, b: str, expected: float) -> None:
    assert locality(a, b) == pytest.approx(expected)


@pytest.mark.parametrize(("ok", "failed", "expected"), [(0, 0, 0.5), (8, 0, 0.9), (0, 8, 0.1), (5, 5, 0.5)])
def test_success_rate(ok: int, failed: int, expected: float) -> None:
    assert success_rate(ok, failed) == pytest.approx(expected)


def chosen(holders: list[Holder], child_location: str, policy: ParentPolicy = DEFAULT) -> int | None:
    """Index of the holder parents.choose picks for a new child at child_location, or None (holders listed later are
    looked at first: a new holder goes to the front of the piece's order)."""
    swarm = Swarm(1, seed_pieces=0, seed_slots=SLOTS, policy=policy)
    task = swarm.task
    task.pieces[0] = PieceMeta(0, 0, PIECE, f"sha256:{0:064x}")
    names = []
    for index, holder in enumerate(holders):
        if holder.seed:
            swarm.write(0)
            peer = swarm.seed
        else:
            peer = swarm.add(f"h{index}", [0], slots=SLOTS, location=holder.loc)
        names.append(peer.peer_id)
        peer.uploads_ok, peer.uploads_failed = holder.ok, holder.failed
        host = peer.host
        for _ in range(host.capacity - holder.free):
            host.started(PIECE)
        swarm.scheduler.registry.refresh_host(host)
        if holder.sending:
            peer.serving[0] = 1
        if holder.bad:
            swarm.scheduler.distrust(task, peer)
    child = swarm.add("child", location=child_location)
    parent = parents.choose(task, child, 0, SEED_FANOUT, policy=swarm.scheduler.policy)
    return None if parent is None else names.index(parent.peer_id)


@pytest.mark.parametrize(
    ("holders", "child_location", "winner"),
    [
        pytest.param([Holder(free=1), Holder(free=7)], "", 1, id="more-free-slots"),
        pytest.param([Holder(ok=0, failed=9), Holder(ok=9, failed=0)], "", 1, id="higher-success-rate"),
        pytest.param([Holder(loc="r2|z1"), Holder(loc="r1|z1")], "r1|z1|k1", 1, id="closer-location"),
        pytest.param([Holder(seed=True, free=8), Holder(free=1, failed=5)], "", 1, id="seed-last-resort"),
        pytest.param([Holder(seed=True), Holder(bad=True, free=8, ok=99)], "", 0, id="bad-parent-excluded"),
        pytest.param([Holder(free=0, ok=99), Holder(free=1)], "", 1, id="no-free-slot-excluded"),
        pytest.param([Holder(free=0), Holder(bad=True)], "", None, id="nobody-can-serve"),
        pytest.param([Holder(seed=True)], "", 0, id="only-seed"),
        # A peer already sending this piece to another child comes after the seed, but before nobody.
        pytest.param(
            [Holder(sending=True, free=8, ok=99), Holder(seed=True, free=1)], "", 1, id="seed-before-busy-peer"
        ),
        pytest.param([Holder(sending=True), Holder(free=1, failed=5)], "", 1, id="idle-peer-before-busy-peer"),
        pytest.param([Holder(sending=True)], "", 0, id="busy-peer-rather-than-nobody"),
    ],
)
def test_choose(holders: list[Holder], child_location: str, winner: int | None) -> None:
    assert chosen(holders, child_location) == winner


ELSEWHERE = [Holder(loc="r1|z2")] * (PARENT_SAMPLE + 2)  # idle, in the child's region but another zone


@pytest.mark.parametrize(
    ("holders", "child_location", "by_default", "nearest"),
    [
        # The holder in the child's zone sends the piece to another child already: default takes the idle one
        # elsewhere, nearest the one in the zone.
        pytest.param(
            [Holder(loc="r1|z2", free=8, ok=9), Holder(loc="r1|z1", sending=True)], "r1|z1|k1", 0, 1, id="zone"
        ),
        # The same region beats another region, however free and reliable the holder there.
        pytest.param(
            [Holder(loc="r2|z1|k1", free=8, ok=99), Holder(loc="r1|z3", free=1, failed=5)],
            "r1|z1|k1",
            0,
            1,
            id="region",
        ),
        # Among holders equally near, default's order: an idle peer before one sending the piece already.
        pytest.param(
            [Holder(loc="r1|z1", sending=True), Holder(loc="r1|z1", free=1, failed=5)], "r1|z1", 1, 1, id="tie"
        ),
        # A child that says nowhere: every holder is as near as any other.
        pytest.param([Holder(loc="r1|z1", sending=True), Holder(loc="r2|z9")], "", 1, 1, id="child-nowhere"),
        # After PARENT_SAMPLE idle holders elsewhere, default stops looking; nearest looks on (up to PARENT_SCAN)
        # for one in the child's zone.
        pytest.param([Holder(loc="r1|z1"), *ELSEWHERE], "r1|z1", len(ELSEWHERE), 0, id="looks-past-the-sample"),
    ],
)
def test_nearest(holders: list[Holder], child_location: str, by_default: int, nearest: int) -> None:
    assert len(holders) <= PARENT_SCAN
    assert chosen(holders, child_location, DEFAULT) == by_default
    assert chosen(holders, child_location, NEAREST) == nearest


def test_policies_by_name() -> None:
    assert {name: policy.name for name, policy in POLICIES.items()} == {"default": "default", "nearest": "nearest"}


@pytest.mark.parametrize("policy", [DEFAULT, NEAREST], ids=lambda p: p.name)
def test_stops_at_the_sample_once_a_holder_has_the_best_rank_there_is(policy: ParentPolicy) -> None:
    """Idle holders in the child's own rack: none can rank higher, so PARENT_SAMPLE of them are compared, not every
    one up to PARENT_SCAN (each choice of a hot task's scheduler stays this cheap with either policy)."""
    ranked: list[tuple[int, float]] = []

    def counted(*parts: Any) -> tuple[int, float]:
        ranked.append(key := policy.rank(*parts))
        return key

    holders = [Holder(loc="r1|z1|k1")] * PARENT_SCAN
    assert chosen(holders, "r1|z1|k1", policy._replace(rank=counted)) is not None
    assert len(ranked) == PARENT_SAMPLE
