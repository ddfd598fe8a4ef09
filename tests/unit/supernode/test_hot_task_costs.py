"""What the scheduler looks at per event in a big swarm: free holders of a piece in the order that finds one not
sending it first, and never more than PARENT_SCAN of them (no network)."""

from __future__ import annotations

from typing import Any

import pytest
from swarm_builder import PIECE, Swarm

from supernode.resource.piece import PieceMeta
from supernode.scheduling import evaluator
from supernode.scheduling.parents import PARENT_SAMPLE, PARENT_SCAN

HOLDERS = 40


def peers_only(pieces: int) -> Swarm:
    """A swarm whose pieces have digests but no seed peer holding them: only the peers added are parents."""
    swarm = Swarm(pieces, seed_pieces=0)
    for n in range(pieces):
        swarm.task.pieces[n] = PieceMeta(n, n * PIECE, PIECE, f"sha256:{n:064x}")
    return swarm


@pytest.fixture
def ranked(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the parents the scheduler ranks (one entry per call of its parent policy's rank, the default one)."""
    calls: list[int] = []
    rank = evaluator.DEFAULT.rank

    def counted(*parts: Any) -> tuple[int, float]:
        calls.append(1)
        return rank(*parts)

    monkeypatch.setattr(evaluator, "DEFAULT", evaluator.DEFAULT._replace(rank=counted))
    return calls


def test_children_of_one_piece_spread_over_its_holders_looking_at_a_few_each(ranked: list[int]) -> None:
    """Each child gets a holder not sending the piece yet, and finds it among the first it looks at: a holder just
    chosen goes to the back (before, every holder already sending the piece was looked at again)."""
    swarm = peers_only(2)
    for n in range(HOLDERS):
        swarm.add(f"h{n}", [0], slots=8)
    chosen = []
    for n in range(HOLDERS):
        (assignment,) = swarm.scheduler.connect(swarm.add(f"c{n}"), 1)
        chosen.append(assignment.parent.peer_id)
    assert sorted(chosen) == sorted(f"h{n}" for n in range(HOLDERS))
    assert len(ranked) <= HOLDERS * PARENT_SAMPLE


def test_a_new_holder_is_looked_at_first_and_no_choice_looks_at_more_than_parent_scan(ranked: list[int]) -> None:
    swarm = peers_only(2)
    for n in range(HOLDERS):
        swarm.add(f"h{n}", [0], slots=8)
    for n in range(HOLDERS):
        swarm.scheduler.connect(swarm.add(f"c{n}"), 1)  # every holder sends piece 0 now
    ranked.clear()
    (busy,) = swarm.scheduler.connect(swarm.add("late"), 1)
    assert busy.parent.peer_id.startswith("h")  # one already sending it: no child waits while a parent is free
    assert len(ranked) == PARENT_SCAN
    swarm.add("fresh", [0], slots=8)
    ranked.clear()
    (assignment,) = swarm.scheduler.connect(swarm.add("last"), 1)
    assert assignment.parent.peer_id == "fresh"
    assert len(ranked) == PARENT_SAMPLE
