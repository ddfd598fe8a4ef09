"""SyncPiecesRequest.read_ranges_applied: a reader says which pieces it keeps to; bounded before it becomes a mask
(a junk range must not make the supernode build a huge one)."""

from __future__ import annotations

import pytest
from dandelion.scheduler.v1 import scheduler_pb2

from dfcommon.errors import InvalidArgument
from supernode.readers import MAX_PIECE_NUMBER
from supernode.rpc import convert, validate
from supernode.rpc.validate import MAX_APPLIED_RANGES

Range = scheduler_pb2.PieceRange


def test_the_ranges_a_reader_keeps_to_become_a_mask() -> None:
    request = scheduler_pb2.SyncPiecesRequest(read_ranges_applied=[Range(first=0, last=2), Range(first=5, last=5)])
    validate.sync_request(request)
    assert convert.read_ranges_applied(request) == 0b100111
    assert convert.read_ranges_applied(scheduler_pb2.SyncPiecesRequest(window=4)) is None, "not said"


@pytest.mark.parametrize(
    "ranges",
    [
        [Range(first=3, last=2)],
        [Range(first=0, last=MAX_PIECE_NUMBER)],
        [Range(first=4_000_000_000, last=4_000_000_001)],
        [Range(first=0, last=0)] * (MAX_APPLIED_RANGES + 1),
    ],
    ids=["backwards", "past-the-last-piece", "huge", "too-many"],
)
def test_ranges_that_are_not_pieces_are_refused(ranges: list[scheduler_pb2.PieceRange]) -> None:
    with pytest.raises(InvalidArgument, match="read_ranges_applied"):
        validate.sync_request(scheduler_pb2.SyncPiecesRequest(read_ranges_applied=ranges))
