"""Turning a batch of assignments into DownloadPieces calls: one or more per parent."""

from __future__ import annotations

from collections.abc import Iterable

from peer.piece.model import Parent, PieceSpec


def group_by_parent(
    assignments: Iterable[tuple[Parent, PieceSpec]], max_group: int
) -> list[tuple[Parent, list[PieceSpec]]]:
    """Group pieces by parent, in assignment order, cutting each parent's list into groups of <= max_group.

    Several groups for one parent become concurrent streams, so one slow piece does not stall the rest.
    Duplicate piece numbers are kept once (first parent wins).
    """
    if max_group < 1:
        raise ValueError("max_group must be at least 1")
    by_parent: dict[Parent, list[PieceSpec]] = {}
    seen: set[int] = set()
    for parent, piece in assignments:
        if piece.number in seen:
            continue
        seen.add(piece.number)
        by_parent.setdefault(parent, []).append(piece)
    groups: list[tuple[Parent, list[PieceSpec]]] = []
    for parent, pieces in by_parent.items():
        for start in range(0, len(pieces), max_group):
            groups.append((parent, pieces[start : start + max_group]))
    return groups
