"""Assignments grouped into DownloadPieces calls."""

from __future__ import annotations

import pytest

from peer.download.origin_read import missing_runs
from peer.piece import failures
from peer.piece.grouping import group_by_parent
from peer.piece.model import Parent, PieceSpec

A = Parent("a", "127.0.0.2", 1)
B = Parent("b", "127.0.0.3", 1)


def spec(n: int) -> PieceSpec:
    return PieceSpec(n, n * 10, 10, "")


@pytest.mark.parametrize(
    ("assignments", "max_group", "expected"),
    [
        ([], 4, []),
        ([(A, 0), (A, 1), (B, 2)], 4, [(A, [0, 1]), (B, [2])]),
        ([(A, 0), (B, 1), (A, 2), (A, 3)], 2, [(A, [0, 2]), (A, [3]), (B, [1])]),
        ([(A, 5), (B, 5), (A, 6)], 4, [(A, [5, 6])]),  # a duplicate goes to the first parent only
        ([(A, n) for n in range(5)], 1, [(A, [n]) for n in range(5)]),
    ],
)
def test_group_by_parent(
    assignments: list[tuple[Parent, int]], max_group: int, expected: list[tuple[Parent, list[int]]]
) -> None:
    groups = group_by_parent([(p, spec(n)) for p, n in assignments], max_group)
    assert [(p, [s.number for s in pieces]) for p, pieces in groups] == expected


def test_group_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        group_by_parent([(A, spec(0))], 0)


@pytest.mark.parametrize(
    ("missing", "runs"),
    [([], []), ([3], [(3, 3)]), ([0, 1, 2, 5, 7, 8], [(0, 2), (5, 5), (7, 8)])],
)
def test_missing_runs(missing: list[int], runs: list[tuple[int, int]]) -> None:
    assert missing_runs(missing) == runs


def test_parent_target_brackets_ipv6() -> None:
    assert Parent("x", "::1", 9).target == "[::1]:9"
    assert A.target == "127.0.0.2:1"


@pytest.mark.parametrize(
    ("code", "failure"),
    [
        ("RESOURCE_EXHAUSTED", failures.PARENT_BUSY),
        ("NOT_FOUND", failures.PARENT_MISSING_PIECE),
        ("DEADLINE_EXCEEDED", failures.TIMEOUT),
        ("UNAVAILABLE", failures.PARENT_UNAVAILABLE),
        ("INTERNAL", failures.PARENT_UNAVAILABLE),
    ],
)
def test_failure_classification(code: str, failure: int) -> None:
    import grpc

    assert failures.classify_status(grpc.StatusCode[code]) == failure
