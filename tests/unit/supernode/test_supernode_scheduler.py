"""Piece assignment as tables: rarest first, windows, parents, failures, drops (no network)."""

from __future__ import annotations

import pytest
from swarm_builder import FAST, PIECE, Swarm, pairs

from supernode.resource.host import Host
from supernode.resource.peer import Peer, PeerState
from supernode.resource.piece import Failure, PieceMeta, PieceReport
from supernode.resource.task import Task, TaskState
from supernode.scheduling import parents
from supernode.scheduling.evaluator import NEAREST
from supernode.scheduling.scheduler import HOPELESS_FAILURES, WAKE_SKIPS


@pytest.mark.parametrize(
    ("pieces", "others", "child_held", "window", "expected"),
    [
        pytest.param(4, {}, [], 2, [(0, "seed"), (1, "seed")], id="seed-only-in-order-within-window"),
        pytest.param(4, {"a": [0, 1], "b": [0]}, [], 2, [(2, "seed"), (3, "seed")], id="rarest-first"),
        pytest.param(4, {"a": [0, 1], "b": [0]}, [], 3, [(2, "seed"), (3, "seed"), (1, "a")], id="rarest-then-next"),
        pytest.param(4, {"a": [0, 1, 2, 3]}, [], 4, [(0, "a"), (1, "a"), (2, "a"), (3, "a")], id="peer-before-seed"),
        pytest.param(3, {"a": [0, 1, 2]}, [0, 2], 8, [(1, "a")], id="never-a-held-piece"),
        pytest.param(3, {}, [0, 1, 2], 8, [], id="complete-peer-gets-nothing"),
    ],
)
def test_assignment_order_and_parent(
    pieces: int, others: dict[str, list[int]], child_held: list[int], window: int, expected: list[tuple[int, str]]
) -> None:
    swarm = Swarm(pieces)
    for name, held in others.items():
        swarm.add(name, held)
    child = swarm.add("c", child_held)
    assert pairs(swarm.scheduler.connect(child, window)) == expected


@pytest.mark.parametrize(
    ("seed_pieces", "peer_held", "expected"),
    [
        pytest.param(0, [], [], id="nothing-written-yet"),
        pytest.param(2, [], [(0, "seed"), (1, "seed")], id="only-written-pieces"),
        pytest.param(1, [3], [(0, "seed")], id="peer-piece-without-sha-is-not-assigned"),
    ],
)
def test_only_pieces_a_parent_holds(seed_pieces: int, peer_held: list[int], expected: list[tuple[int, str]]) -> None:
    swarm = Swarm(4, seed_pieces=seed_pieces)
    swarm.add("a", peer_held)
    child = swarm.add("c")
    assert pairs(swarm.scheduler.connect(child, 8)) == expected


def test_children_starting_together_take_different_pieces_from_the_seed() -> None:
    """Lowest number first, but the seed serves each piece to one child at a time: the second child takes the
    next pieces, then the rarest, and the first pieces later come from the first child."""
    swarm = Swarm(8)
    first = swarm.add("c1")
    second = swarm.add("c2")
    assert pairs(swarm.scheduler.connect(first, 3)) == [(0, "seed"), (1, "seed"), (2, "seed")]
    assert pairs(swarm.scheduler.connect(second, 3)) == [(3, "seed"), (4, "seed"), (5, "seed")]
    assert pairs(swarm.scheduler.report(first, [PieceReport(0, "seed", True)])) == [(6, "seed")]
    assert pairs(swarm.scheduler.report(second, [PieceReport(3, "seed", True)])) == [(7, "seed")]  # rarest first
    assert pairs(swarm.scheduler.report(second, [PieceReport(4, "seed", True)])) == [(0, "c1")]


def test_a_slot_freed_by_one_task_wakes_starved_peers_of_another() -> None:
    """The seed peer's host serves both tasks: when a report in task A frees its only upload slot, a peer of task B
    that starved for want of a free parent gets its piece then (it used to wait for the 30 s stall)."""
    swarm = Swarm(4, seed_slots=1)  # one slot: 4 pieces in flight
    other = Task(
        "u" * 64,
        "http://o/y",
        "",
        state=TaskState.RUNNING,
        content_length=PIECE,
        piece_size=PIECE,
        piece_count=1,
    )
    seed_b = Peer("seed-b", other.task_id, swarm.seed_host, state=PeerState.BACK_TO_SOURCE)
    swarm.scheduler.add_task(other)
    swarm.scheduler.add_peer(other, seed_b)
    swarm.scheduler.piece_authored(other, seed_b, PieceMeta(0, 0, PIECE, "blake3:" + "ab" * 32))
    first = swarm.add("a")
    assert len(swarm.scheduler.connect(first, 4)) == 4  # the seed host is full
    host = Host("host-b", "b", "127.0.0.3", 65000, 4, "", 0.0)
    swarm.scheduler.add_host(host)
    waiting = Peer("b", other.task_id, host)
    swarm.scheduler.add_peer(other, waiting)
    assert swarm.scheduler.connect(waiting, 1) == []  # no free parent: starved
    woken = swarm.scheduler.report(first, [PieceReport(0, "seed", True)])
    assert ("b", 0, "seed-b") in {(a.child_id, a.piece.number, a.parent.peer_id) for a in woken}


def test_written_pieces_are_assigned_to_waiting_peers_at_once() -> None:
    swarm = Swarm(3, seed_pieces=0)
    child = swarm.add("c", connect=True)
    assert child.peer_id in swarm.task.starved
    assert pairs(swarm.write(0)) == [(0, "seed")]
    assert pairs(swarm.write(1)) == [(1, "seed")]


def test_a_batch_of_reports_passes_over_the_peers_it_cannot_help_once() -> None:
    """A SyncPieces message carries several reports; the starved peers they may help are woken once for the message,
    so peers that lack only pieces nobody can send yet are passed over once per message, not once per report (in a
    hot task that passing over was most of the scheduler's work)."""
    swarm = Swarm(4, seed_pieces=2)
    for n in range(50):
        swarm.add(f"w{n}", [0, 1], connect=True)  # they lack only 2 and 3
    reporter = swarm.add("r")
    fetches = pairs(swarm.scheduler.connect(reporter, 2))
    assert [number for number, _ in fetches] == [0, 1]
    waiting = list(swarm.task.starved)
    assert sorted(waiting) == sorted(f"w{n}" for n in range(50))
    assigned = swarm.scheduler.report(reporter, [PieceReport(number, parent, True) for number, parent in fetches])
    assert assigned == []  # nobody can send 2 or 3
    # One wake: as many peers as the reporter's host has free slots (it holds new pieces), one per slot the reports
    # freed at their parents, and WAKE_SKIPS more.
    passed_over = reporter.host.free_slots + 2 + WAKE_SKIPS
    assert passed_over < len(waiting)
    assert list(swarm.task.starved) == waiting[passed_over:] + waiting[:passed_over] + ["r"]
    # They are still woken when what they lack exists.
    woken = {a.child_id for a in swarm.write(2)}
    assert woken and woken <= set(waiting) | {"r"}


def test_window_is_respected_and_refilled_on_report() -> None:
    swarm = Swarm(5)
    child = swarm.add("c")
    first = swarm.scheduler.connect(child, 2)
    assert len(first) == 2 and len(child.outstanding) == 2
    more = swarm.scheduler.report(child, [PieceReport(first[0].piece.number, "seed", True)])
    assert pairs(more) == [(2, "seed")]
    assert len(child.outstanding) == 2
    assert child.held_count == 1
    assert swarm.seed.uploads_ok == 1


def test_free_upload_slots_spread_load() -> None:
    swarm = Swarm(8)
    swarm.add("busy", list(range(8)), slots=1)  # capacity: 4 pieces
    swarm.add("other", list(range(8)), slots=1)
    child = swarm.add("c")
    parents = [parent for _, parent in pairs(swarm.scheduler.connect(child, 8))]
    assert parents.count("busy") == 4 and parents.count("other") == 4
    late = swarm.add("d")
    assert {parent for _, parent in pairs(swarm.scheduler.connect(late, 2))} == {"seed"}


def test_locality_is_preferred() -> None:
    swarm = Swarm(2)
    swarm.add("far", [0, 1], location="r2|z1|k1")
    swarm.add("near", [0, 1], location="r1|z1|k2")
    child = swarm.add("c", location="r1|z1|k1")
    assert {parent for _, parent in pairs(swarm.scheduler.connect(child, 2))} == {"near"}


@pytest.mark.parametrize(
    ("failure", "penalised", "skipped", "excluded"),
    [
        (Failure.TIMEOUT, True, False, False),
        (Failure.PARENT_UNAVAILABLE, True, True, False),  # skipped until its host heart-beats again
        (Failure.PARENT_MISSING_PIECE, True, True, False),  # that piece is no longer fetched from it
        (Failure.PARENT_BUSY, False, False, False),
        (Failure.LOCAL, False, False, False),
        (Failure.BAD_DIGEST, True, True, True),
    ],
)
def test_failure_reassigns_and_penalises(failure: Failure, penalised: bool, skipped: bool, excluded: bool) -> None:
    swarm = Swarm(2)
    bad = swarm.add("a", [0, 1], slots=8)
    child = swarm.add("c")
    assert pairs(swarm.scheduler.connect(child, 1)) == [(0, "a")]
    again = swarm.scheduler.report(child, [PieceReport(0, "a", False, failure)])
    assert len(again) == 1 and again[0].piece.number == 0
    assert bad.uploads_failed == (1 if penalised else 0)
    assert again[0].parent.peer_id == ("seed" if skipped else "a")
    if excluded:
        other = swarm.add("d")
        assert {p for _, p in pairs(swarm.scheduler.connect(other, 2))} == {"seed"}
        assert "a" not in swarm.task.holders[1]


def test_timeout_expires_assignment_to_another_parent() -> None:
    swarm = Swarm(1)
    slow = swarm.add("a", [0])
    child = swarm.add("c")
    assert pairs(swarm.scheduler.connect(child, 1)) == [(0, "a")]
    swarm.clock.now += 29
    assert swarm.scheduler.expire() == []
    swarm.clock.now += 2
    assert pairs(swarm.scheduler.expire()) == [(0, "a")]  # still the only peer parent, now penalised
    assert slow.uploads_failed == 1
    swarm.scheduler.report(child, [PieceReport(0, "a", True)])
    swarm.clock.now += 60
    assert swarm.scheduler.expire() == []


def test_parent_leaving_reassigns_its_pieces() -> None:
    swarm = Swarm(2)
    leaving = swarm.add("a", [0, 1])
    child = swarm.add("c")
    assert {p for _, p in pairs(swarm.scheduler.connect(child, 2))} == {"a"}
    again = swarm.scheduler.remove_peer(leaving)
    assert sorted(pairs(again)) == [(0, "seed"), (1, "seed")]
    assert leaving.host.inflight == 0
    assert all("a" not in h for h in swarm.task.holders)


def test_host_drop_returns_child_slots_to_parents() -> None:
    swarm = Swarm(4)
    parent = swarm.add("a", [0, 1, 2, 3], slots=1)
    child = swarm.add("c")
    waiting = swarm.add("d")
    swarm.scheduler.connect(child, 4)
    assert parent.host.inflight == 4
    assert {p for _, p in pairs(swarm.scheduler.connect(waiting, 1))} == {"seed"}
    swarm.scheduler.remove_host(child.host)
    assert parent.host.inflight == 0
    assert "c" not in swarm.scheduler.peers


def test_stopped_peer_gets_nothing() -> None:
    swarm = Swarm(2)
    child = swarm.add("c", connect=True, window=1)
    assert len(child.outstanding) == 1
    swarm.scheduler.set_state(child, PeerState.BACK_TO_SOURCE)
    assert child.outstanding == {} and swarm.seed_host.inflight == 0
    assert swarm.scheduler.fill(child) == []


def test_timeout_hands_the_freed_slot_to_a_waiting_peer() -> None:
    swarm = Swarm(4, seed_slots=0)  # the seed is out of the picture
    swarm.add("a", [0, 1, 2, 3], slots=1)  # capacity 4: two children with window 2 fill it (different pieces)
    first = swarm.add("c1")
    second = swarm.add("c2")
    assert {p for _, p in pairs(swarm.scheduler.connect(first, 2))} == {"a"}
    assert {p for _, p in pairs(swarm.scheduler.connect(second, 2))} == {"a"}
    waiting = swarm.add("w")
    assert swarm.scheduler.connect(waiting, 1) == []
    swarm.clock.now += 31
    handed = swarm.scheduler.expire()
    assert "w" in {a.child_id for a in handed}
    assert all(a.parent.peer_id == "a" for a in handed)


def test_deadline_heap_is_compacted() -> None:
    swarm = Swarm(4)
    child = swarm.add("c")
    assigned = swarm.scheduler.connect(child, 4)
    for _ in range(600):  # fail and re-assign the same pieces again and again
        failures = [PieceReport(a.piece.number, "seed", False, Failure.LOCAL) for a in assigned]
        assigned = swarm.scheduler.report(child, failures)
        assert len(assigned) == 4
    assert len(swarm.scheduler._deadlines) > 2000
    swarm.scheduler.expire()
    assert len(swarm.scheduler._deadlines) <= 4 * len(child.outstanding) + 1024
    assert len(child.outstanding) == 4
    swarm.clock.now += 31
    assert len(swarm.scheduler.expire()) == 4  # the live ones still time out


@pytest.mark.parametrize("zones", [0, 3], ids=["default-policy", "nearest-in-3-zones"])
@pytest.mark.parametrize("batched", [False, True], ids=["one-report-per-message", "batched"])
@pytest.mark.parametrize("seed_pieces", [8, 0])
def test_random_swarm_with_failures_completes_without_leaks(seed_pieces: int, batched: bool, zones: int) -> None:
    """With the nearest policy too: children kept waiting for a holder in their zone, or for a piece crossing into
    it, all complete, and no crossing stays counted."""
    import random
    from collections import deque

    swarm = Swarm(8, seed_pieces=seed_pieces, seed_slots=1, policy=NEAREST if zones else None)
    rng = random.Random(seed_pieces)
    peers = [swarm.add(f"p{i}", slots=1, location=f"r1|z{i % zones}" if zones else f"r{i % 2}") for i in range(30)]
    queue = deque(a for p in peers for a in swarm.scheduler.connect(p, 4))
    written = seed_pieces
    for _ in range(10_000):
        if not queue and written == 8:  # every host heart-beats: parents marked unreachable are offered again
            queue.extend(a for host in list(swarm.scheduler.hosts.values()) for a in swarm.scheduler.host_alive(host))
            if not queue:
                break
        if written < 8 and (not queue or rng.random() < 0.05):
            queue.extend(swarm.write(written))
            written += 1
            continue
        a = queue.popleft()
        batch = [a]
        if batched:  # every assignment of that child still queued, in one message
            batch += [b for b in queue if b.child_id == a.child_id]
            queue = deque(b for b in queue if b.child_id != a.child_id)
        reports = []
        for b in batch:
            ok = rng.random() > 0.1
            failure = (
                Failure.NONE if ok else rng.choice([Failure.TIMEOUT, Failure.PARENT_BUSY, Failure.PARENT_UNAVAILABLE])
            )
            reports.append(PieceReport(b.piece.number, b.parent.peer_id, ok, failure))
        queue.extend(swarm.scheduler.report(swarm.peers[a.child_id], reports))
    assert all(p.held_count == 8 for p in peers)
    assert all(h.inflight == 0 for h in swarm.scheduler.hosts.values()) and swarm.seed_host.inflight == 0
    assert swarm.task.starved == {}
    assert swarm.task.crossing == {}
    assert swarm.seed.uploads_ok < 30 * 8 / 2  # peers served most pieces


def test_parent_missing_a_piece_is_no_longer_its_holder() -> None:
    """A peer that lost its copy (cache dropped or edited) answers NOT_FOUND: that piece is fetched elsewhere and
    never assigned from there again, while its other pieces still are."""
    swarm = Swarm(4)
    lost = swarm.add("a", [0, 1, 2, 3], slots=8)
    child = swarm.add("c")
    assert pairs(swarm.scheduler.connect(child, 1)) == [(0, "a")]
    again = swarm.scheduler.report(child, [PieceReport(0, "a", False, Failure.PARENT_MISSING_PIECE)])
    assert pairs(again) == [(0, "seed")]
    assert not lost.holds(0) and swarm.task.counts[0] == 1
    late = swarm.add("d")
    assert pairs(swarm.scheduler.connect(late, 2)) == [(1, "a"), (2, "a")]


def test_unreachable_parent_is_skipped_until_it_heart_beats() -> None:
    swarm = Swarm(4)
    gone = swarm.add("a", [0, 1, 2, 3], slots=8)
    child = swarm.add("c")
    assert {p for _, p in pairs(swarm.scheduler.connect(child, 2))} == {"a"}
    again = swarm.scheduler.report(child, [PieceReport(0, "a", False, Failure.PARENT_UNAVAILABLE)])
    assert pairs(again) == [(0, "seed")]  # not "a" again
    late = swarm.add("d")
    assert {p for _, p in pairs(swarm.scheduler.connect(late, 2))} == {"seed"}
    swarm.scheduler.host_alive(gone.host)  # it heart-beats again
    assert gone.host.unreachable is False
    fresh = swarm.add("e")
    assert {p for _, p in pairs(swarm.scheduler.connect(fresh, 2))} == {"a"}


def test_seed_serves_each_piece_to_one_child_at_a_time() -> None:
    swarm = Swarm(4)
    children = [swarm.add(name, connect=False) for name in ("a", "b", "c", "d")]
    assigned = [a for child in children for a in swarm.scheduler.connect(child, 4)]
    # Every piece leaves the seed once; the four children start on different pieces.
    assert sorted(number for number, _ in pairs(assigned)) == [0, 1, 2, 3]
    assert {parent for _, parent in pairs(assigned)} == {"seed"}
    first = assigned[0]
    holder = swarm.peers[first.child_id]
    more = swarm.scheduler.report(holder, [PieceReport(first.piece.number, "seed", True)])
    # The other three fetch that piece now: the first from the child that holds it, the second from the seed
    # (its uplink would idle otherwise, and it sends the piece to nobody else now), the third from that child
    # again, sharing it (nobody waits while a parent is free). The seed still sends it to one child at a time.
    again = sorted(p for n, p in pairs(more) if n == first.piece.number)
    assert again == sorted([holder.peer_id, holder.peer_id, "seed"])


def test_a_failed_seed_fetch_frees_the_piece_for_another_child() -> None:
    swarm = Swarm(1)
    a, b = swarm.add("a", connect=False), swarm.add("b", connect=False)
    assert pairs(swarm.scheduler.connect(a, 2)) == [(0, "seed")]
    assert swarm.scheduler.connect(b, 2) == []  # waits: the seed already serves piece 0 to a
    again = swarm.scheduler.report(a, [PieceReport(0, "seed", False, Failure.LOCAL)])
    assert sorted(pairs(again)) == [(0, "seed")]  # to a again or to b, once


def test_an_unreachable_seed_peer_is_skipped_until_it_heart_beats() -> None:
    swarm = Swarm(4)
    child = swarm.add("c", connect=False)
    assert pairs(swarm.scheduler.connect(child, 1)) == [(0, "seed")]
    assert swarm.scheduler.report(child, [PieceReport(0, "seed", False, Failure.PARENT_UNAVAILABLE)]) == []
    assert swarm.seed_host.unreachable and swarm.seed.uploads_failed == 1
    swarm.clock.now += 120
    assert swarm.scheduler.expire() == [], "time alone does not bring it back"
    assert pairs(swarm.scheduler.host_alive(swarm.seed_host)) == [(0, "seed")]


def test_a_child_whose_fetches_keep_failing_is_hopeless_until_a_piece_arrives() -> None:
    swarm = Swarm(10)
    child = swarm.add("c", connect=False)
    swarm.scheduler.connect(child, 1)
    for _ in range(HOPELESS_FAILURES - 1):
        again = swarm.scheduler.report(child, [PieceReport(0, "seed", False, Failure.PARENT_BUSY)])
        assert pairs(again) == [(0, "seed")]  # a busy seed is asked again: the peer paces that
    assert not swarm.scheduler.hopeless(child)
    swarm.scheduler.report(child, [PieceReport(0, "seed", False, Failure.LOCAL)])  # its own fault: not counted
    assert not swarm.scheduler.hopeless(child)
    swarm.scheduler.report(child, [PieceReport(0, "seed", False, Failure.TIMEOUT)])
    assert swarm.scheduler.hopeless(child)
    swarm.scheduler.report(child, [PieceReport(0, "seed", True)])
    assert not swarm.scheduler.hopeless(child)
    swarm.scheduler.report(child, [PieceReport(n, "seed", False, Failure.PARENT_UNAVAILABLE) for n in range(1, 9)])
    assert not swarm.scheduler.hopeless(child)  # a whole window failing once: not hopeless
    swarm.scheduler.report(child, [PieceReport(1, "seed", False, Failure.PARENT_BUSY)] * HOPELESS_FAILURES)
    assert swarm.scheduler.hopeless(child)
    swarm.scheduler.set_state(child, PeerState.BACK_TO_SOURCE)
    assert not swarm.scheduler.hopeless(child)  # the count ends with the download


def _cache_peer(swarm: Swarm) -> Peer:
    cache_host = Host("cache-host", "cache", "127.0.0.3", 65000, 4, "", 0.0, seed_peer=True, rate=FAST)
    swarm.scheduler.add_host(cache_host)
    cache = Peer("cache", swarm.task.task_id, cache_host)
    swarm.scheduler.add_peer(swarm.task, cache)
    return cache


def test_a_seed_peers_copy_waits_until_the_plain_peers_hold_everything() -> None:
    """The cluster's cache comes last: while a host still lacks a piece, a seed peer takes nothing from a parent
    that is sending; the report that completes the last host wakes it, and it copies from the parents, idle by then
    (one piece under way from each: choose)."""
    swarm = Swarm(4)
    swarm.add("a", held=[0, 1, 2, 3])
    swarm.scheduler.remove_peer(swarm.seed)  # a is the only holder
    b = swarm.add("b")
    assert pairs(swarm.scheduler.connect(b, 4)) == [(0, "a"), (1, "a"), (2, "a"), (3, "a")]
    cache = _cache_peer(swarm)
    assert swarm.scheduler.connect(cache, 4) == [], "b lacks pieces: the cache waits"
    assert swarm.scheduler.report(b, [PieceReport(n, "a", True) for n in (0, 1, 2)]) == []
    swarm.clock.now += parents.SEED_COPY_PATIENCE_S - 1
    got = swarm.scheduler.report(b, [PieceReport(3, "a", True)])  # b is complete
    assert pairs(got) == [(0, "a"), (1, "b")], "one piece from each parent, both idle now"
    assert {a.child_id for a in got} == {"cache"}


def test_a_seed_peers_copy_waits_only_for_the_plain_peers_still_in_the_task() -> None:
    """A host that lacks pieces holds the copy back while it is in the task; once it leaves, its pieces no longer
    count, and the copy goes on (Task.plain_held follows holds, losses and departures)."""
    swarm = Swarm(3)
    a = swarm.add("a", held=[0, 1, 2])
    swarm.add("b", held=[0, 1, 2])
    swarm.scheduler.remove_peer(swarm.seed)
    c = swarm.add("c", held=[0])
    cache = _cache_peer(swarm)
    assert swarm.scheduler.connect(cache, 2) == [], "every piece has two holders: nothing at risk"
    assert swarm.task.plain_held == 7
    swarm.scheduler.registry.unhold(swarm.task, a, 2)  # a's cache lost piece 2
    assert swarm.task.plain_held == 6
    swarm.scheduler.report(a, [PieceReport(2, "", True)])
    assert swarm.task.plain_held == 7
    got = swarm.scheduler.remove_peer(c)  # c leaves with pieces 1 and 2 missing
    assert swarm.task.plain_held == 6
    assert sorted(x.piece.number for x in got if x.child_id == "cache") == [0, 1], "a and b send nothing: it copies"


def test_a_waiting_seed_peer_copies_a_piece_only_one_peer_holds_from_a_parent_sending_nothing() -> None:
    """The cache keeps a copy of what exists once: were its only holder lost, the origin would be read again. It
    takes such a piece only from a parent sending nothing, so the hosts' downloads do not wait for it."""
    swarm = Swarm(2)
    swarm.add("a", held=[0, 1])
    swarm.scheduler.remove_peer(swarm.seed)  # a is the only holder of both
    b = swarm.add("b")
    assert pairs(swarm.scheduler.connect(b, 1)) == [(0, "a")]
    cache = _cache_peer(swarm)
    assert swarm.scheduler.connect(cache, 2) == [], "a is sending"
    got = swarm.scheduler.report(b, [PieceReport(0, "a", True)])  # a is idle; piece 0 has two holders now
    assert [(x.piece.number, x.parent.peer_id) for x in got if x.child_id == "cache"] == [(1, "a")]


def test_a_waiting_seed_peer_takes_one_piece_from_a_busy_parent_after_its_patience() -> None:
    """A seed peer that has waited SEED_COPY_PATIENCE_S without a piece (hosts keep arriving, or one stopped short)
    takes one piece from a busy parent, and more only from parent hosts that send nothing at the moment, so it
    keeps moving long before it would give up on the swarm. A plain child takes what a busy parent's slots allow."""
    swarm = Swarm(4)
    swarm.add("a", held=[0, 1, 2, 3])
    swarm.scheduler.remove_peer(swarm.seed)  # a is the only holder
    b = swarm.add("b")
    assert pairs(swarm.scheduler.connect(b, 1)) == [(0, "a")]  # a sends piece 0 to b now
    cache = _cache_peer(swarm)
    assert swarm.scheduler.connect(cache, 4) == []
    swarm.clock.now += parents.SEED_COPY_PATIENCE_S
    assert pairs(swarm.scheduler.set_window(cache, 4)) == [(0, "a")], "one piece from the busy parent, not four"
    c = swarm.add("c")
    assert pairs(swarm.scheduler.connect(c, 3)) == [(0, "a"), (1, "a"), (2, "a")], "a plain child is not held back"
    d = swarm.add("d")
    got = swarm.scheduler.report(d, [PieceReport(3, "", True)])  # d holds piece 3 now and sends nothing
    assert [(x.piece.number, x.parent.peer_id) for x in got if x.child_id == "cache"] == [(3, "d")]
