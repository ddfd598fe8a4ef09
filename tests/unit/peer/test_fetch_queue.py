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


def test_a_cooling_parent_waits_and_others_go_first() -> None:
    queue = FetchQueue(max_streams=2, group_size=4)
    queue.add(A, spec(0))
    queue.add(B, spec(1))
    cooling = {"a"}
    assert numbers(queue.next_group(lambda p: p.peer_id not in cooling)) == ("b", [1])
    assert queue.next_group(lambda p: p.peer_id not in cooling) is None and len(queue) == 1
    cooling.clear()
    assert numbers(queue.next_group(lambda p: p.peer_id not in cooling)) == ("a", [0])


def test_a_reassigned_piece_moves_to_its_new_parent() -> None:
    queue = FetchQueue(max_streams=2, group_size=4)
    queue.add(A, spec(0))
    queue.add(A, spec(1))
    assert queue.add(B, spec(0))
    assert not queue.add(B, spec(0))
    assert len(queue) == 2
    assert numbers(queue.next_group(lambda p: p.peer_id == "b")) == ("b", [0])
    assert numbers(queue.next_group()) == ("a", [1])
