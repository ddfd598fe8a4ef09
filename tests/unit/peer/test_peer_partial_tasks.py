"""Partial tasks across restarts: the piece journal, the start-up check, reuse, shape changes, eviction."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from dfcommon.piecedigest import digest_of
from peer.piece.assembler import PieceAssembler
from peer.piece.model import PieceSpec
from peer.storage import Storage
from peer.storage.journal import JOURNAL, parse

PIECE = 1024
DATA = bytes((i * 13 + 5) % 251 for i in range(4 * PIECE - 10))  # four pieces, a short last one


def piece(number: int) -> bytes:
    return DATA[number * PIECE : (number + 1) * PIECE]


def interrupted(tmp_path: Path, numbers: tuple[int, ...], task_id: str = "t") -> Path:
    """A store holding the given pieces, left as a SIGKILL leaves it (files not closed, meta not saved again)."""
    storage = Storage(tmp_path)
    store = storage.create(task_id, "http://origin/f", "", len(DATA), PIECE)
    for number in numbers:
        store.write_piece(number, [piece(number)])
    return store.directory


def test_a_partial_task_survives_a_restart_with_its_pieces_and_digests(tmp_path: Path) -> None:
    directory = interrupted(tmp_path, (0, 2))
    storage = Storage(tmp_path)
    store = storage.get_partial("t")
    assert store is not None and not store.complete
    assert store.missing() == [1, 3]
    assert store.read(2 * PIECE, PIECE) == piece(2)
    assert store.piece_digest(2) == digest_of("blake3", [piece(2)])
    assert store.piece_digest(1) == ""
    assert storage.get_complete("t") is None
    assert (directory / "data").stat().st_size == len(DATA)


def test_a_piece_verified_against_a_digest_keeps_that_digest(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    store = storage.create("t", "u", "", len(DATA), PIECE)
    wanted = digest_of("sha256", [piece(1)])
    assembler = PieceAssembler(PieceSpec(1, PIECE, PIECE, wanted))
    assembler.add(0, piece(1))
    assembler.verify_and_write(store)
    again = Storage(tmp_path).get_partial("t")
    assert again is not None and again.piece_digest(1) == wanted and again.missing() == [0, 2, 3]


def test_pieces_whose_bytes_did_not_reach_the_disk_are_dropped_at_start_up(tmp_path: Path) -> None:
    directory = interrupted(tmp_path, (0, 1, 3))
    with open(directory / "data", "r+b") as data:  # piece 1's bytes lost (e.g. a power cut after its journal line)
        data.seek(PIECE)
        data.write(bytes(PIECE))
    store = Storage(tmp_path).get_partial("t")
    assert store is not None and store.missing() == [1, 2]
    assert sorted(parse((directory / JOURNAL).read_bytes())[0]) == [0, 3]  # the journal says so too


def test_a_torn_journal_line_ends_the_journal(tmp_path: Path) -> None:
    directory = interrupted(tmp_path, (0, 1))
    with open(directory / JOURNAL, "ab") as journal:
        journal.write(b"2 blake3:00")  # a write cut short
    store = Storage(tmp_path).get_partial("t")
    assert store is not None and store.missing() == [2, 3]
    assert (directory / JOURNAL).read_bytes().endswith(b"\n")


def test_a_garbled_line_ends_the_journal_there(tmp_path: Path) -> None:
    directory = interrupted(tmp_path, (0, 1, 2))
    lines = (directory / JOURNAL).read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b"1 ", b"3 ", 1)  # the CRC no longer matches
    (directory / JOURNAL).write_bytes(b"".join(lines))
    store = Storage(tmp_path).get_partial("t")
    assert store is not None and store.missing() == [1, 2, 3]


def test_partial_tasks_past_the_ttl_or_without_a_journal_are_dropped(tmp_path: Path) -> None:
    old = interrupted(tmp_path, (0,), "old")
    legacy = interrupted(tmp_path, (0,), "legacy")
    (legacy / JOURNAL).unlink()
    meta = json.loads((old / "meta.json").read_text())
    (old / "meta.json").write_text(json.dumps(meta | {"last_used": time.time() - 120}))
    storage = Storage(tmp_path, ttl_seconds=60)
    assert storage.get("old") is None and storage.get("legacy") is None
    assert not old.exists() and not legacy.exists()


def test_the_swarm_cutting_the_content_otherwise_resets_a_partial_task(tmp_path: Path) -> None:
    interrupted(tmp_path, (0, 1))
    store = Storage(tmp_path).get_partial("t")
    assert store is not None
    store.reshape(len(DATA), 2 * PIECE)
    assert store.bitmap.count == 0 and store.missing() == [0, 1]
    assert store.read(0, PIECE) == bytes(PIECE)  # the old bytes are gone, not mistaken for new ones
    assert Storage(tmp_path).get("t") is None  # nothing held: not kept at the next start either


def test_a_download_in_progress_keeps_its_pieces_on_a_shape_change(tmp_path: Path) -> None:
    store = Storage(tmp_path).create("t", "u", "", len(DATA), PIECE)
    store.write_piece(0, [piece(0)])
    store.reshape(len(DATA), 2 * PIECE)
    assert store.meta.piece_size == PIECE and store.has(0)


def test_a_stopping_daemon_keeps_the_pieces_of_cancelled_downloads(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    store = storage.create("t", "u", "", len(DATA), PIECE)
    store.write_piece(3, [DATA[3 * PIECE :]])
    storage.keep_partials = True
    storage.remove("t")  # what a cancelled download does
    storage.close()
    again = Storage(tmp_path).get_partial("t")
    assert again is not None and again.missing() == [0, 1, 2]


def test_partial_tasks_count_against_the_quota_and_are_evicted_least_recently_used(tmp_path: Path) -> None:
    for name in ("a", "b"):
        interrupted(tmp_path, (0, 1, 2), name)
    storage = Storage(tmp_path)
    now = time.time()
    storage.get("a").meta.last_used = now - 10  # type: ignore[union-attr]
    storage.get("b").meta.last_used = now  # type: ignore[union-attr]
    block = os.statvfs(tmp_path).f_frsize
    held = storage.get("a").disk_usage()  # type: ignore[union-attr]
    assert storage.usage() == 2 * held  # what they hold, not their whole length
    storage.quota_bytes = held + block // 2
    assert storage.gc(now) == ["a"]
    assert storage.get("b") is not None
