"""A SyncPieces message's piece results as the scheduler's reports (supernode.rpc.convert.reports)."""

from __future__ import annotations

import pytest
from dandelion.scheduler.v1 import scheduler_pb2

from supernode.resource.piece import Failure, PieceReport
from supernode.rpc.convert import reports


@pytest.mark.parametrize(
    ("result", "report"),
    [
        pytest.param(
            scheduler_pb2.PieceResult(piece_number=3, parent_peer_id="p", success=True, duration_ms=250),
            PieceReport(3, "p", True, Failure.NONE, "", 0.25),
            id="the-childs-time-for-the-piece-is-the-parents-sending-time",
        ),
        pytest.param(
            scheduler_pb2.PieceResult(piece_number=3, parent_peer_id="p", success=True),
            PieceReport(3, "p", True, Failure.NONE, "", 0.0),
            id="no-time-given",
        ),
        pytest.param(
            scheduler_pb2.PieceResult(piece_number=1, success=True, digest="blake3:" + "a" * 64),
            PieceReport(1, "", True, Failure.NONE, "blake3:" + "a" * 64),
            id="held-with-its-digest",
        ),
        pytest.param(
            scheduler_pb2.PieceResult(piece_number=2, parent_peer_id="p", failure=scheduler_pb2.PIECE_FAILURE_TIMEOUT),
            PieceReport(2, "p", False, Failure.TIMEOUT),
            id="a-failure",
        ),
        pytest.param(
            scheduler_pb2.PieceResult(piece_number=2, parent_peer_id="p", failure=99),  # type: ignore[arg-type]
            PieceReport(2, "p", False, Failure.LOCAL),
            id="a-failure-this-supernode-does-not-know-counts-as-local",
        ),
    ],
)
def test_piece_results(result: scheduler_pb2.PieceResult, report: PieceReport) -> None:
    assert reports([result]) == [report]
