"""Mapping what went wrong with a parent to the scheduler's PieceFailure."""

from __future__ import annotations

import grpc
from dandelion.scheduler.v1 import scheduler_pb2

TIMEOUT = scheduler_pb2.PIECE_FAILURE_TIMEOUT
BAD_DIGEST = scheduler_pb2.PIECE_FAILURE_BAD_DIGEST
PARENT_UNAVAILABLE = scheduler_pb2.PIECE_FAILURE_PARENT_UNAVAILABLE
PARENT_MISSING_PIECE = scheduler_pb2.PIECE_FAILURE_PARENT_MISSING_PIECE
PARENT_BUSY = scheduler_pb2.PIECE_FAILURE_PARENT_BUSY
LOCAL = scheduler_pb2.PIECE_FAILURE_LOCAL


def classify_status(code: grpc.StatusCode | None) -> int:
    """PieceFailure for a parent's gRPC status."""
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return PARENT_BUSY
    if code == grpc.StatusCode.NOT_FOUND:
        return PARENT_MISSING_PIECE
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return TIMEOUT
    if code == grpc.StatusCode.DATA_LOSS:
        return BAD_DIGEST
    return PARENT_UNAVAILABLE
