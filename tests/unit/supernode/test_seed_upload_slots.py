"""The seed's upload slots and file descriptors come back on every way a DownloadPieces stream can end."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from dfcommon.errors import NotFound
from dfcommon.metrics import SLOTS_BUSY
from dfcommon.pieces import CHUNK_SIZE
from dfcommon.slots import Busy
from supernode.resource.piece import PieceMeta
from supernode.seed import uploads as uploads_module
from supernode.seed.store import SeedStore
from supernode.seed.uploads import SeedUploads

TASK = "t" * 64
PIECE = 4 * CHUNK_SIZE


def open_fds() -> int:
    """Descriptors this process holds."""
    return len(os.listdir("/proc/self/fd"))


def gauge() -> float:
    """dandelion_slots_busy{pool="seed_uploads"}."""
    return SLOTS_BUSY.labels(uploads_module.POOL)._value.get()


@pytest.fixture
def uploads(tmp_path: Path) -> SeedUploads:
    """Two slots over a cached task of three 4 MiB pieces."""
    store = SeedStore(tmp_path)
    store.data_path(TASK).write_bytes(os.urandom(3 * PIECE))
    pieces = {n: PieceMeta(n, n * PIECE, PIECE, "") for n in range(3)}
    return SeedUploads(store, 2, lambda tid: pieces if tid == TASK else None)


async def drain(uploads: SeedUploads, numbers: list[int], stop_after: int | None = None) -> int:
    """Chunks received (stops early after stop_after without closing the generator explicitly)."""
    count = 0
    async for _ in uploads.messages(TASK, numbers):
        count += 1
        if count == stop_after:
            break
    return count


async def test_slot_comes_back_when_cancelled_while_the_file_opens(
    uploads: SeedUploads, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller cancelled while the worker thread opens the file (a peer killed, a deadline, under a busy thread
    pool) gives its slot back, and the descriptor the thread opens later is closed."""
    release = threading.Event()
    real_open: Callable[..., int] = os.open

    def slow_open(path: object, flags: int, *args: object) -> int:
        release.wait(10)
        return real_open(path, flags, *args)

    monkeypatch.setattr(uploads_module.os, "open", slow_open)
    before = open_fds()
    for _ in range(4):  # more than the two slots: a leak would make the last calls Busy
        call = asyncio.ensure_future(drain(uploads, [0]))
        await asyncio.sleep(0.05)
        assert uploads.active == 1 and gauge() >= 1
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert uploads.active == 0
        release.set()
        await asyncio.sleep(0.1)  # the thread's open completes and its descriptor is closed
        release.clear()
    monkeypatch.setattr(uploads_module.os, "open", real_open)
    assert open_fds() == before
    assert await drain(uploads, [0, 1]) == 8


async def test_slot_comes_back_on_every_end(uploads: SeedUploads) -> None:
    """Finished, abandoned mid-stream, cancelled mid-read, closed, and failing calls all release their slot."""
    before = open_fds()
    assert await drain(uploads, [0, 1, 2]) == 12
    assert uploads.active == 0
    stream = uploads.messages(TASK, [0, 1, 2])
    await anext(stream)
    assert uploads.active == 1
    await stream.aclose()
    assert uploads.active == 0
    call = asyncio.ensure_future(drain(uploads, [0, 1, 2]))
    await asyncio.sleep(0)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert uploads.active == 0
    with pytest.raises(NotFound):
        await drain(uploads, [0, 7])
    uploads.store.data_path(TASK).unlink()
    with pytest.raises(NotFound):
        await drain(uploads, [0])
    assert uploads.active == 0
    await asyncio.sleep(0.1)  # dropped read-aheads finish in their threads
    assert open_fds() == before


async def test_busy_when_every_slot_is_held(uploads: SeedUploads) -> None:
    """A third concurrent call gets Busy (RESOURCE_EXHAUSTED); a slot given back is usable again."""
    first, second = uploads.messages(TASK, [0]), uploads.messages(TASK, [1])
    await anext(first)
    await anext(second)
    with pytest.raises(Busy, match="seed upload slots busy"):
        await drain(uploads, [2])
    await first.aclose()
    assert await drain(uploads, [2]) == 4
    await second.aclose()
    assert uploads.active == 0
