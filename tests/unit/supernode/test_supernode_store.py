"""The seed's disk cache: metadata round trip, verification on load, no reuse of incomplete or damaged entries."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from dfcommon.piecedigest import digest_of
from dfcommon.pieces import piece_span
from supernode.resource.piece import PieceMeta
from supernode.seed.store import SeedStore

SIZE = 1000
TID = "a" * 64


def write(store: SeedStore, body: bytes, complete: bool = True) -> list[PieceMeta]:
    fd = store.create(TID)
    os.pwrite(fd, body, 0)
    os.close(fd)
    pieces = []
    for n in range(-(-len(body) // SIZE)):
        offset, size = piece_span(n, len(body), SIZE)
        pieces.append(PieceMeta(n, offset, size, digest_of("blake3", (body[offset : offset + size],))))
    store.write_meta(TID, "http://o/x", "", len(body), SIZE, pieces, complete, hashlib.sha256(body).hexdigest())
    return pieces


def test_round_trip(tmp_path: Path) -> None:
    store = SeedStore(tmp_path)
    body = os.urandom(3 * SIZE + 1)
    pieces = write(store, body)
    entry = store.load(TID)
    assert entry is not None
    assert entry.pieces == tuple(pieces)
    assert entry.url == "http://o/x"
    assert entry.content_length == len(body)
    record = json.loads(store.meta_path(TID).read_text())
    assert set(record) == {
        "task_id",
        "url",
        "digest",
        "content_length",
        "piece_size",
        "piece_digests",
        "complete",
        "sha256",
    }


@pytest.mark.parametrize("damage", ["incomplete", "flipped", "truncated", "bad-json", "missing-data"])
def test_damaged_entries_are_discarded(tmp_path: Path, damage: str) -> None:
    store = SeedStore(tmp_path)
    body = os.urandom(2 * SIZE)
    pieces = write(store, body, complete=damage != "incomplete")
    data = store.data_path(TID)
    if damage == "flipped":
        with data.open("r+b") as f:
            f.seek(SIZE + 3)
            f.write(b"\xff" if body[SIZE + 3] != 0xFF else b"\x00")
        assert not store.verify_piece(TID, pieces[1])
        assert store.verify_piece(TID, pieces[0])
    elif damage == "truncated":
        os.truncate(data, SIZE)
    elif damage == "bad-json":
        store.meta_path(TID).write_text("{")
    elif damage == "missing-data":
        data.unlink()
    assert store.load(TID) is None
    assert not store.meta_path(TID).exists()
    assert not data.exists()


def test_unknown_task(tmp_path: Path) -> None:
    assert SeedStore(tmp_path).load(TID) is None


def test_metadata_from_before_named_digests_loads_as_sha256(tmp_path: Path) -> None:
    """A seed cache written when piece digests were bare sha256 hex stays usable after an upgrade."""
    store = SeedStore(tmp_path)
    body = os.urandom(3 * SIZE + 1)
    pieces = write(store, body)
    record = json.loads(store.meta_path(TID).read_text())
    del record["piece_digests"]
    record["piece_sha256"] = [hashlib.sha256(body[p.offset : p.offset + p.size]).hexdigest() for p in pieces]
    store.meta_path(TID).write_text(json.dumps(record))
    entry = store.load(TID)
    assert entry is not None
    assert [p.digest for p in entry.pieces] == [f"sha256:{sha}" for sha in record["piece_sha256"]]


def test_metadata_with_an_unknown_piece_digest_is_discarded(tmp_path: Path) -> None:
    store = SeedStore(tmp_path)
    write(store, os.urandom(2 * SIZE))
    record = json.loads(store.meta_path(TID).read_text())
    record["piece_digests"][0] = "md5:" + "0" * 32
    store.meta_path(TID).write_text(json.dumps(record))
    assert store.load(TID) is None
    assert not store.data_path(TID).exists()
