"""A read of the origin for the swarm reads its part only: it leaves a body where another reader's part begins,
reads the runs of its missing pieces with Range requests, and reads more when its part grows."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from dfcommon.content import ContentRequest
from dfcommon.pieces import ranges_mask
from peer.download import origin_read as module
from peer.download.origin_read import OriginRead
from peer.origin import OriginResponse
from peer.storage import Storage, TaskStore

PIECE = 64 * 1024
CONTENT = bytes(range(256)) * (8 * PIECE // 256)  # 8 pieces


class Origin:
    """Serves CONTENT and records each request's (start, end)."""

    def __init__(self) -> None:
        self.requests: list[tuple[int, int | None]] = []
        self.sent = 0
        self.on_sent: Callable[[int], None] = lambda sent: None  # called after each chunk with the bytes sent

    @contextlib.asynccontextmanager
    async def open(
        self, _http: object, _request: ContentRequest, start: int = 0, end: int | None = None
    ) -> AsyncIterator[OriginResponse]:
        self.requests.append((start, end))
        stop = len(CONTENT) if end is None else end + 1

        async def body() -> AsyncIterator[memoryview]:
            for offset in range(start, stop, PIECE // 4):
                chunk = CONTENT[offset : min(stop, offset + PIECE // 4)]
                self.sent += len(chunk)
                yield memoryview(chunk)
                self.on_sent(self.sent)

        yield OriginResponse(len(CONTENT) if end is None else stop - start, body())


class Listener:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.store: TaskStore | None = None
        self.offered: list[int] = []
        self.read: OriginRead | None = None
        self.narrow_after: tuple[int, int | None] | None = None  # (piece, new allowed mask)
        self.applied: list[list[int]] = []  # what was offered when each narrowing was applied

    def create_store(self, content_length: int, piece_size: int) -> TaskStore:
        self.store = self.storage.create("t" * 64, "http://o/f", "", content_length, PIECE)
        return self.store

    def answered(self, store: TaskStore) -> None:
        pass

    def stored(self, number: int, size: int, digest: str) -> None:
        if self.narrow_after is not None and number == self.narrow_after[0] and self.read is not None:
            self.read.narrow(self.narrow_after[1], self.say_applied)

    def say_applied(self) -> None:
        self.applied.append(list(self.offered))

    def offer(self, number: int, digest: str) -> None:
        self.offered.append(number)


@pytest.fixture
def origin(monkeypatch: pytest.MonkeyPatch) -> Origin:
    served = Origin()
    monkeypatch.setattr(module, "open_origin", served.open)
    return served


def reader(tmp_path: Path, listener: Listener, allowed: int | None) -> OriginRead:
    read = OriginRead(
        object(), ContentRequest("http://o/f"), "http://o/f", [], tmp_path, {}, "blake3", listener, allowed
    )  # type: ignore[arg-type]
    listener.read = read
    return read


async def test_a_whole_read_narrowed_leaves_the_body_where_the_other_part_begins(
    tmp_path: Path, origin: Origin
) -> None:
    listener = Listener(Storage(tmp_path))
    listener.narrow_after = (1, ranges_mask(((0, 4),)))  # after piece 1, another reader takes 5..7
    await reader(tmp_path, listener, None).run(None)
    store = listener.store
    assert store is not None
    assert [n for n in range(8) if store.has(n)] == [0, 1, 2, 3, 4] and listener.offered == [0, 1, 2, 3, 4]
    assert origin.requests == [(0, None)]
    assert origin.sent <= 5 * PIECE + PIECE // 4, "it stopped reading at the cut (here: at most one chunk more)"
    assert store.read(0, 5 * PIECE) == CONTENT[: 5 * PIECE]


async def test_a_part_is_read_with_range_requests_for_its_missing_runs(tmp_path: Path, origin: Origin) -> None:
    listener = Listener(Storage(tmp_path))
    store = listener.create_store(len(CONTENT), PIECE)
    store.write_piece(5, [CONTENT[5 * PIECE : 6 * PIECE]])  # fetched from a parent already
    await reader(tmp_path, listener, ranges_mask(((3, 7),))).run(store)
    assert origin.requests == [(3 * PIECE, 5 * PIECE - 1), (6 * PIECE, 8 * PIECE - 1)]
    assert sorted(listener.offered) == [3, 4, 6, 7]
    assert not store.has(0) and not store.has(2), "outside its part: another reader's or the swarm's"


async def test_a_part_that_grows_while_read_is_read_to_its_new_end(tmp_path: Path, origin: Origin) -> None:
    listener = Listener(Storage(tmp_path))
    store = listener.create_store(len(CONTENT), PIECE)
    listener.narrow_after = (3, ranges_mask(((2, 3), (6, 7))))  # a reader of 6..7 left: its part comes here
    await reader(tmp_path, listener, ranges_mask(((2, 3),))).run(store)
    assert origin.requests == [(2 * PIECE, 4 * PIECE - 1), (6 * PIECE, 8 * PIECE - 1)]
    assert sorted(listener.offered) == [2, 3, 6, 7]


async def test_a_whole_read_narrowed_to_parts_further_on_reads_them_with_range(tmp_path: Path, origin: Origin) -> None:
    """The first reader's part is cut short, then pieces further on become its own again (their reader left): it
    leaves the whole body at the cut and reads those with a Range request."""
    listener = Listener(Storage(tmp_path))
    listener.narrow_after = (1, ranges_mask(((0, 2), (5, 6))))  # after piece 1: keeps 0..2, takes 5..6 too
    await reader(tmp_path, listener, None).run(None)
    store = listener.store
    assert store is not None
    assert origin.requests == [(0, None), (5 * PIECE, 7 * PIECE - 1)]
    assert sorted(listener.offered) == [0, 1, 2, 5, 6]
    assert store.read(5 * PIECE, 2 * PIECE) == CONTENT[5 * PIECE : 7 * PIECE]


async def test_a_narrowing_while_a_piece_is_written_is_said_once_that_piece_is_offered(
    tmp_path: Path, origin: Origin
) -> None:
    """The supernode hands the part taken away to another peer only once every piece stored before was offered."""
    listener = Listener(Storage(tmp_path))
    listener.narrow_after = (1, ranges_mask(((0, 1),)))  # while piece 1 is written, 2..7 go to another reader
    await reader(tmp_path, listener, None).run(None)
    assert listener.offered == [0, 1]
    assert listener.applied == [[0, 1]], "said after piece 1 was offered, not before"


async def test_a_piece_arriving_when_its_part_is_taken_is_not_stored(tmp_path: Path, origin: Origin) -> None:
    """Narrowed halfway through piece 2: the piece is left to the peer that reads 2..7 now, and that is said at once
    (nothing is being written)."""
    listener = Listener(Storage(tmp_path))
    read = reader(tmp_path, listener, None)

    def narrow_in_piece_two(sent: int) -> None:
        if sent == 2 * PIECE + PIECE // 2:
            read.narrow(ranges_mask(((0, 1),)), listener.say_applied)

    origin.on_sent = narrow_in_piece_two
    await read.run(None)
    store = listener.store
    assert store is not None
    assert listener.offered == [0, 1] and not store.has(2)
    assert listener.applied == [[0, 1]]
