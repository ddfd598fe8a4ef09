"""The whole-content check hashes what the store holds, in order, whatever order the pieces arrive in."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

from dfcommon.pieces import CHUNK_SIZE
from peer.download.verify import ContentCheck
from peer.storage import Storage

PIECE = 2 * CHUNK_SIZE + CHUNK_SIZE // 2  # pieces span several read buffers, and end inside one


async def test_pieces_larger_than_a_chunk_hash_to_the_content_digest(tmp_path: Path) -> None:
    data = os.urandom(3 * PIECE + 12345)  # a short last piece
    want = "sha256:" + hashlib.sha256(data).hexdigest()
    store = Storage(tmp_path).create("t1", "http://origin/f", "", len(data), PIECE)
    changed = asyncio.Event()

    def next_change() -> asyncio.Event:
        return changed

    check = ContentCheck(want, next_change)
    check.watch(store)
    for number in (3, 1, 0, 2):  # out of order: the hash waits for piece 0, then follows
        offset, size = store.span(number)
        store.write_piece(number, [data[offset : offset + size]])
        changed.set()
        changed = asyncio.Event()
        await asyncio.sleep(0.01)
    assert await asyncio.wait_for(check.result(store), 10) == want


async def test_a_piece_missing_from_the_file_gives_another_digest(tmp_path: Path) -> None:
    """The file cut short under a held piece: the check does not match (it never reads past the end as content)."""
    data = os.urandom(2 * PIECE)
    want = "sha256:" + hashlib.sha256(data).hexdigest()
    store = Storage(tmp_path).create("t2", "http://origin/g", "", len(data), PIECE)
    for number in (0, 1):
        offset, size = store.span(number)
        store.write_piece(number, [data[offset : offset + size]])
    os.truncate(store.directory / "data", PIECE + CHUNK_SIZE)
    check = ContentCheck(want, asyncio.Event)
    assert await asyncio.wait_for(check.result(store), 10) != want
