"""Task stores: pieces, bitmap, metadata, reuse across restarts, GC."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from dfcommon.errors import DigestMismatch
from dfcommon.piecedigest import digest_of
from peer.piece.assembler import PieceAssembler
from peer.piece.model import PieceSpec
from peer.storage import Storage
from peer.storage.bitmap import Bitmap

PIECE = 1024


def content(size: int) -> bytes:
    return bytes((i * 7 + 3) % 251 for i in range(size))


def test_bitmap_matches_wire_layout() -> None:
    bitmap = Bitmap(10)
    assert bitmap.add(0) == (0, 1)
    assert bitmap.add(9) == (1, 2)
    assert 9 in bitmap and 8 not in bitmap and 100 not in bitmap
    assert bitmap.count == 2
    assert bitmap.missing(10) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert Bitmap(10, bitmap.to_bytes()).count == 2


def test_write_read_and_reload(tmp_path: Path) -> None:
    data = content(3 * PIECE - 100)
    storage = Storage(tmp_path)
    store = storage.create("t1", "http://origin/f", "", len(data), PIECE)
    assert store.meta.piece_count == 3
    for held, number in enumerate((2, 0, 1)):
        assert store.completed_length() == [0, PIECE - 100, 2 * PIECE - 100][held]
        offset, size = store.span(number)
        store.write_piece(number, [data[offset : offset + size]])
    assert store.completed_length() == len(data)
    assert store.all_held() and store.missing() == []
    assert store.read(0, len(data)) == data
    store.mark_complete()
    storage.close()

    again = Storage(tmp_path)
    reloaded = again.get_complete("t1")
    assert reloaded is not None and reloaded.read(0, len(data)) == data
    assert reloaded.meta.url == "http://origin/f"


def test_incomplete_task_without_pieces_is_dropped_on_restart(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    storage.create("t2", "http://origin/g", "", 2 * PIECE, PIECE)
    storage.close()
    assert Storage(tmp_path).get("t2") is None
    assert not (tmp_path / "tasks" / "t2").exists()


def test_meta_never_holds_headers(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    storage.create("t3", "http://origin/h", "", 10, PIECE)
    meta = json.loads((tmp_path / "tasks" / "t3" / "meta.json").read_text())
    assert set(meta) == {
        "task_id",
        "url",
        "digest",
        "content_length",
        "piece_size",
        "complete",
        "last_used",
        "data_mtime_ns",
    }


def test_wrong_size_piece_is_refused(tmp_path: Path) -> None:
    store = Storage(tmp_path).create("t4", "u", "", 2 * PIECE, PIECE)
    with pytest.raises(ValueError):
        store.write_piece(0, [b"short"])
    assert not store.has(0)


@pytest.mark.parametrize("algorithm", ["blake3", "sha256"])
async def test_bad_piece_is_never_stored(tmp_path: Path, algorithm: str) -> None:
    data = content(PIECE)
    store = Storage(tmp_path).create("t5", "u", "", PIECE, PIECE)
    wrong = PieceSpec(0, 0, PIECE, digest_of(algorithm, [b"something else"]))
    assembler = PieceAssembler(wrong)
    assembler.add(0, data[:500])
    assembler.add(500, data[500:])
    with pytest.raises(DigestMismatch):
        await assembler.store(store)
    assert not store.has(0)
    assert os.pread(os.open(store.directory / "data", os.O_RDONLY), PIECE, 0) == bytes(PIECE)

    right = PieceAssembler(PieceSpec(0, 0, PIECE, digest_of(algorithm, [data])))
    right.add(0, data)
    await right.store(store)
    assert store.has(0) and store.read(0, PIECE) == data


async def test_chunks_out_of_place_are_refused() -> None:
    assembler = PieceAssembler(PieceSpec(0, 0, 10, ""))
    with pytest.raises(ValueError):
        assembler.add(3, b"abc")
    assembler.add(0, b"0123456")
    with pytest.raises(ValueError):
        assembler.add(7, b"789X")


def test_gc_by_ttl_and_quota_skips_pinned(tmp_path: Path) -> None:
    storage = Storage(tmp_path, ttl_seconds=100, quota_bytes=10 << 20)
    stores = []
    for index in range(3):
        store = storage.create(f"g{index}", "u", "", 4 << 20, 4 << 20)
        store.write_piece(0, [os.urandom(4 << 20)])
        store.mark_complete()
        store.meta.last_used = 1000.0 + index
        stores.append(store)
    stores[0].meta.last_used = 0.0  # idle past the TTL
    stores[1].pins = 1  # in use: kept whatever its age
    stores[1].meta.last_used = 0.0
    removed = storage.gc(now=1050.0)
    assert removed == ["g0"]
    assert storage.get("g1") is not None and storage.get("g2") is not None

    storage.quota_bytes = 5 << 20  # over quota: the least recently used unpinned goes
    assert storage.gc(now=1050.0) == ["g2"]
    assert storage.get("g1") is not None


async def test_a_piece_with_an_unusable_digest_is_never_stored(tmp_path: Path) -> None:
    """A digest in an algorithm this peer does not know cannot vouch for the bytes."""
    data = content(PIECE)
    store = Storage(tmp_path).create("t6", "u", "", PIECE, PIECE)
    assembler = PieceAssembler(PieceSpec(0, 0, PIECE, "md5:" + hashlib.md5(data).hexdigest()))
    assembler.add(0, data)
    with pytest.raises(DigestMismatch):
        await assembler.store(store)
    assert not store.has(0)


def test_an_empty_store_takes_another_shape_and_a_used_one_keeps_its_own(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    store = storage.create("t1", "http://origin/f", "", 3 * PIECE, PIECE)
    store.reshape(3 * PIECE, 2 * PIECE)  # handed over before any piece: the swarm's piece size wins
    assert (store.meta.piece_size, store.meta.piece_count) == (2 * PIECE, 2)
    assert json.loads((store.directory / "meta.json").read_text())["piece_size"] == 2 * PIECE
    store.write_piece(0, [content(2 * PIECE)])
    store.reshape(3 * PIECE, PIECE)
    assert store.meta.piece_size == 2 * PIECE
