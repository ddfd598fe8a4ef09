"""When piece results go to the supernode (peer.download.report_batch): a lone result at once, results that keep
coming at most one message per BATCH_DELAY, or as soon as BATCH_SIZE wait."""

from __future__ import annotations

import pytest

from peer.download.report_batch import BATCH_DELAY, BATCH_SIZE, ReportBatch
from peer.piece.model import PieceOutcome


def outcome(number: int) -> PieceOutcome:
    return PieceOutcome(number, "parent", True)


def test_a_result_that_arrives_alone_goes_at_once() -> None:
    batch = ReportBatch()
    assert batch.add(outcome(0), now=100.0)
    assert [o.number for o in batch.take(100.0)] == [0]
    # Long after the last message: at once again.
    assert batch.add(outcome(1), now=100.0 + 2 * BATCH_DELAY)


def test_results_that_keep_coming_go_together_once_per_delay() -> None:
    batch = ReportBatch()
    assert batch.add(outcome(0), now=10.0)
    batch.take(10.0)
    step = BATCH_DELAY / 4
    assert not batch.add(outcome(1), now=10.0 + step)
    assert not batch.add(outcome(2), now=10.0 + 2 * step)
    assert batch.due_in(10.0 + 2 * step) == pytest.approx(BATCH_DELAY - 2 * step)
    # The wait runs from the last message, not from the last result: results keep coming, yet they go on time.
    assert batch.add(outcome(3), now=10.0 + BATCH_DELAY)
    assert [o.number for o in batch.take(10.0 + BATCH_DELAY)] == [1, 2, 3]


def test_a_full_batch_goes_at_once() -> None:
    batch = ReportBatch()
    batch.add(outcome(0), now=0.0)
    batch.take(0.0)
    due = [batch.add(outcome(n), now=0.001) for n in range(1, BATCH_SIZE + 1)]
    assert due == [False] * (BATCH_SIZE - 1) + [True]


def test_taking_nothing_leaves_the_pace_as_it_was() -> None:
    batch = ReportBatch()
    assert not batch and batch.take(5.0) == []
    assert batch.add(outcome(0), now=5.0)  # nothing went at 5.0: this one goes at once
