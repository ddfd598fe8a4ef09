"""Assigned pieces waiting for a free stream; groups form per parent when a stream frees up."""

from __future__ import annotations

from collections.abc import Callable

from peer.piece.model import Parent, PieceSpec


class FetchQueue:
    """Holds assignments until one of max_streams DownloadPieces calls is free, then hands out up to
    group_size pieces of one parent (parents in turn), so pieces that arrive one by one still travel in groups.
    Pieces of a parent in its cool-down wait (see next_group's ready)."""

    def __init__(self, max_streams: int, group_size: int) -> None:
        if max_streams < 1 or group_size < 1:
            raise ValueError("max_streams and group_size must be at least 1")
        self.max_streams = max_streams
        self.group_size = group_size
        self.active = 0
        self._pending: dict[Parent, list[PieceSpec]] = {}
        self._queued: dict[int, Parent] = {}

    def __len__(self) -> int:
        return len(self._queued)

    def add(self, parent: Parent, piece: PieceSpec) -> bool:
        """Queue a piece; False when it is already queued for that parent. A piece queued for another parent
        moves to this one (the scheduler re-assigned it, e.g. after its first parent failed)."""
        current = self._queued.get(piece.number)
        if current == parent:
            return False
        if current is not None:
            left = [p for p in self._pending[current] if p.number != piece.number]
            if left:
                self._pending[current] = left
            else:
                del self._pending[current]
        self._queued[piece.number] = parent
        self._pending.setdefault(parent, []).append(piece)
        return True

    def next_group(self, ready: Callable[[Parent], bool] | None = None) -> tuple[Parent, list[PieceSpec]] | None:
        """The next group to fetch when a stream is free (counted as active until release()), from the first
        parent that ready() accepts (all when None)."""
        if self.active >= self.max_streams:
            return None
        parent = next((p for p in self._pending if ready is None or ready(p)), None)
        if parent is None:
            return None
        pieces = self._pending.pop(parent)
        group, rest = pieces[: self.group_size], pieces[self.group_size :]
        if rest:
            self._pending[parent] = rest  # back of the line: parents take turns
        for piece in group:
            del self._queued[piece.number]
        self.active += 1
        return parent, group

    def clear(self) -> None:
        """Drop every queued piece (streams already handed out stay counted until released)."""
        self._pending.clear()
        self._queued.clear()

    def release(self) -> None:
        """A stream finished."""
        self.active = max(0, self.active - 1)
