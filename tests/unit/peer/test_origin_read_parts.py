"""A read of the origin for the swarm reads its part only: it leaves a body where another reader's part begins,
reads the runs of its missing pieces with Range requests, and reads more when its part grows."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dfcommon import read_windows
from dfcommon.backoff import BackoffPolicy
from dfcommon.content import ContentRequest
from dfcommon.errors import OriginError
from dfcommon.pieces import ranges_mask
from peer.download import origin_read as module
from peer.download.origin_read import OriginRead
from peer.origin import OriginResponse
from peer.origin_body import OriginCut
from peer.storage import Storage, TaskStore

PIECE = 64 * 1024
CONTENT = bytes(range(256)) * (8 * PIECE // 256)  # 8 pieces


class Origin:
    """Serves CONTENT and records each request's (start, end)."""

    def __init__(self) -> None:
        self.requests: list[tuple[int, int | None]] = []
        self.sent = 0
        self.answer_delay = 0.0  # seconds before each answer (a far origin)

    @contextlib.asynccontextmanager
    async def open(
        self, _http: object, _request: ContentRequest, start: int = 0, end: int | None = None, window: int = 0
    ) -> AsyncIterator[OriginResponse]:
        if window and start == 0 and end is None:
            end = min(window, len(CONTENT)) - 1  # peer.origin.open_origin asks for the first window only
        self.requests.append((start, end))
        await asyncio.sleep(self.answer_delay)
        stop = len(CONTENT) if end is None else end + 1

        async def body() -> AsyncIterator[memoryview]:
            for offset in range(start, stop, PIECE // 4):
                chunk = CONTENT[offset : min(stop, offset + PIECE // 4)]
                self.sent += len(chunk)
                yield memoryview(chunk)

        yield OriginResponse(stop - start, body(), total=len(CONTENT))


class Listener:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.store: TaskStore | None = None
        self.offered: list[int] = []
        self.read: OriginRead | None = None
        self.narrow_after: tuple[int, int | None] | None = None  # (piece, new allowed mask)

    def create_store(self, content_length: int, piece_size: int) -> TaskStore:
        self.store = self.storage.create("t" * 64, "http://o/f", "", content_length, PIECE)
        return self.store

    def answered(self, store: TaskStore) -> None:
        pass

    def stored(self, number: int, size: int, digest: str) -> None:
        if self.narrow_after is not None and number == self.narrow_after[0] and self.read is not None:
            self.read.narrow(self.narrow_after[1])

    def offer(self, number: int, digest: str) -> None:
        self.offered.append(number)


@pytest.fixture
def origin(monkeypatch: pytest.MonkeyPatch) -> Origin:
    served = Origin()
    monkeypatch.setattr(module, "open_origin", served.open)
    return served


def reader(
    tmp_path: Path, listener: Listener, allowed: int | None, windowed: bool = False, ahead: bool = True
) -> OriginRead:
    read = OriginRead(
        object(), ContentRequest("http://o/f"), "http://o/f", [], tmp_path, {}, "blake3", listener, allowed
    )  # type: ignore[arg-type]
    read.windowed, read.ask_ahead = windowed, ahead  # as with a far origin
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


@pytest.fixture
def two_piece_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read_windows, "FIRST_WINDOW", 2 * PIECE)
    monkeypatch.setattr(module, "FIRST_WINDOW", 2 * PIECE)


@pytest.mark.usefixtures("two_piece_windows")
async def test_a_read_for_the_swarm_asks_window_by_window(tmp_path: Path, origin: Origin) -> None:
    """Each request ends at a window boundary: the content's length comes with the first window's answer."""
    listener = Listener(Storage(tmp_path))
    await reader(tmp_path, listener, None, windowed=True).run(None)
    assert origin.requests == [(w * 2 * PIECE, (w + 1) * 2 * PIECE - 1) for w in range(4)]
    assert listener.offered == list(range(8)) and origin.sent == len(CONTENT)
    assert listener.store is not None and listener.store.read(0, len(CONTENT)) == CONTENT


@pytest.mark.usefixtures("two_piece_windows")
async def test_a_read_split_at_the_supernodes_point_sends_nothing_twice(tmp_path: Path, origin: Origin) -> None:
    """Narrowed while at piece 1 to the pieces before dfcommon.read_windows.split_point: the origin sent exactly the
    pieces kept, as the reader's requests (the one read and the one sent ahead) end where the other part begins."""
    cut = read_windows.split_point(1, 7, PIECE)
    assert cut == 6, "the third window boundary from the window read now"
    listener = Listener(Storage(tmp_path))
    listener.narrow_after = (1, ranges_mask(((0, cut - 1),)))
    await reader(tmp_path, listener, None, windowed=True).run(None)
    assert origin.requests == [(w * 2 * PIECE, (w + 1) * 2 * PIECE - 1) for w in range(3)]
    assert origin.sent == cut * PIECE and listener.offered == list(range(cut))


@pytest.mark.usefixtures("two_piece_windows")
async def test_a_window_asked_for_ahead_and_no_longer_wanted_is_left_unread(tmp_path: Path, origin: Origin) -> None:
    """Narrowed (against the supernode's rule) within the window read now: the request already sent for the next
    window is closed without reading its body."""
    listener = Listener(Storage(tmp_path))
    listener.narrow_after = (2, ranges_mask(((0, 3),)))
    await reader(tmp_path, listener, None, windowed=True).run(None)
    assert origin.requests == [(w * 2 * PIECE, (w + 1) * 2 * PIECE - 1) for w in range(3)], "window 2 was asked for"
    assert origin.sent == 4 * PIECE and listener.offered == [0, 1, 2, 3]


async def test_pieces_larger_than_the_first_request_are_read_whole(
    tmp_path: Path, origin: Origin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first request asks for less than a piece: the rest of the first window is asked for, then one piece a
    window."""
    monkeypatch.setattr(read_windows, "FIRST_WINDOW", PIECE // 2)
    monkeypatch.setattr(module, "FIRST_WINDOW", PIECE // 2)
    listener = Listener(Storage(tmp_path))
    await reader(tmp_path, listener, None, windowed=True).run(None)
    windows = [(n * PIECE, (n + 1) * PIECE - 1) for n in range(1, 8)]
    assert origin.requests == [(0, PIECE // 2 - 1), (PIECE // 2, PIECE - 1), *windows]
    assert listener.offered == list(range(8)) and origin.sent == len(CONTENT)
    assert listener.store is not None and listener.store.read(0, len(CONTENT)) == CONTENT


@pytest.mark.usefixtures("two_piece_windows")
async def test_a_near_origin_is_not_asked_ahead(tmp_path: Path, origin: Origin) -> None:
    """The answers come at once: no window is asked for before the one before it is read, and the read goes on
    without asking ahead."""
    listener = Listener(Storage(tmp_path))
    read = reader(tmp_path, listener, None, windowed=True, ahead=False)
    listener.narrow_after = (2, ranges_mask(((0, 3),)))
    await read.run(None)
    assert origin.requests == [(0, 2 * PIECE - 1), (2 * PIECE, 4 * PIECE - 1)] and not read.ask_ahead


@pytest.mark.usefixtures("two_piece_windows")
async def test_a_far_origin_is_asked_ahead_from_its_third_request_on(tmp_path: Path, origin: Origin) -> None:
    """Answers that take long against the windows' read (here: all of it) make the read ask for each next window
    while it reads one; the first two requests (a new connection) are not judged."""
    origin.answer_delay = 0.02
    listener = Listener(Storage(tmp_path))
    read = reader(tmp_path, listener, None, windowed=True, ahead=False)
    await read.run(None)
    assert read.ask_ahead and listener.offered == list(range(8)) and origin.sent == len(CONTENT)


@pytest.mark.usefixtures("two_piece_windows")
async def test_a_window_the_origin_refuses_for_a_while_is_asked_for_again(
    tmp_path: Path, origin: Origin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The origin restarts between two windows: the next window's request is sent again, with the resumes'
    back-off, as a cut body would be resumed; a refusal (401, here) is not retried."""
    refusals = [OriginCut("cannot connect: connection refused")] * 2
    real_open = origin.open

    @contextlib.asynccontextmanager
    async def flaky(http: object, request: ContentRequest, start: int = 0, end: int | None = None, window: int = 0):  # type: ignore[no-untyped-def]
        if start == 2 * PIECE and refusals:
            raise refusals.pop()
        async with real_open(http, request, start, end, window) as response:
            yield response

    monkeypatch.setattr(module, "open_origin", flaky)
    monkeypatch.setattr(module, "RESUME_BACKOFF", BackoffPolicy(base=0.001, cap=0.001, jitter=0.0))
    listener = Listener(Storage(tmp_path))
    await reader(tmp_path, listener, None, windowed=True, ahead=False).run(None)
    assert listener.offered == list(range(8)) and not refusals

    refusals.append(OriginError("origin returned HTTP 401 Unauthorized", 401))
    listener = Listener(Storage(tmp_path / "2"))
    with pytest.raises(OriginError, match="401"):
        await reader(tmp_path / "2", listener, None, windowed=True, ahead=False).run(None)


@pytest.mark.usefixtures("two_piece_windows")
async def test_a_window_asked_for_ahead_that_the_read_skips_is_closed_unread(tmp_path: Path, origin: Origin) -> None:
    """Narrowed mid-read to skip the window asked for ahead: that request is closed without reading its body, and
    the read goes on with the next window of its own."""
    listener = Listener(Storage(tmp_path))
    listener.narrow_after = (2, ranges_mask(((0, 3), (6, 7))))
    await reader(tmp_path, listener, None, windowed=True).run(None)
    assert origin.requests == [(w * 2 * PIECE, (w + 1) * 2 * PIECE - 1) for w in range(4)], "window 2 was asked for"
    assert origin.sent == 6 * PIECE and listener.offered == [0, 1, 2, 3, 6, 7]
