"""Pieces waiting for a free DownloadPieces stream."""

from __future__ import annotations

import pytest

from peer.piece.model import Parent, PieceSpec
from peer.piece.queue import FetchQueue

A = Parent("a", "127.0.0.2", 1)
B = Parent("b", "127.0.0.3", 1)


def spec(n: int) -> PieceSpec:
    return PieceSpec(n, n * 10, 10, "")


def numbers(group: tuple[Parent, list[PieceSpec]] | None) -> tuple[str, list[int]] | None:
    return None if group is None else (group[0].peer_id, [p.number for p in group[1]])


def test_groups_form_while_streams_are_busy() -> None:
    queue = FetchQueue(max_streams=1, group_size=3)
    queue.add(A, spec(0))
    assert numbers(queue.next_group()) == ("a", [0])
    for n in (1, 2, 3, 4):  # arrive one by one while the only stream is busy
        queue.add(A, spec(n))
    assert queue.next_group() is None and len(queue) == 4
    queue.release()
    assert numbers(queue.next_group()) == ("a", [1, 2, 3])
    queue.release()
    assert numbers(queue.next_group()) == ("a", [4])
    queue.release()
    assert queue.next_group() is None and len(queue) == 0


def test_parents_take_turns_and_duplicates_are_dropped() -> None:
    queue = FetchQueue(max_streams=3, group_size=2)
    for parent, n in [(A, 0), (A, 1), (A, 2), (B, 3), (A, 0)]:
        queue.add(parent, spec(n))
    assert [numbers(queue.next_group()) for _ in range(3)] == [("a", [0, 1]), ("b", [3]), ("a", [2])]
    assert queue.active == 3


def test_bad_limits() -> None:
    with pytest.raises(ValueError):
        FetchQueue(0, 1)
