"""The seed's disk cache: one content file and one JSON metadata file per task.

Metadata holds the display URL (never headers), lengths and the piece digest list;
only complete, verified entries are reused after a restart.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from dfcommon import piecedigest
from dfcommon.pieces import piece_count, piece_span
from supernode.resource.piece import PieceMeta

_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class CacheEntry:
    """A complete cached content, as described by its metadata file."""

    task_id: str
    url: str
    digest: str
    content_length: int
    piece_size: int
    pieces: tuple[PieceMeta, ...]
    sha256: str


class SeedStore:
    """Files under DATA_DIR/seed/: <task_id>.data and <task_id>.json."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "seed"
        self.root.mkdir(parents=True, exist_ok=True)

    def data_path(self, task_id: str) -> Path:
        """Where the task's content is written."""
        return self.root / f"{task_id}.data"

    def meta_path(self, task_id: str) -> Path:
        """Where the task's metadata is written."""
        return self.root / f"{task_id}.json"

    def holds(self, task_id: str) -> bool:
        """True when a metadata file (written only for complete content) exists for the task; load() checks it."""
        return self.meta_path(task_id).exists()

    def create(self, task_id: str) -> int:
        """Open a fresh, empty content file for writing; returns its descriptor."""
        with contextlib.suppress(FileNotFoundError):
            self.meta_path(task_id).unlink()
        return os.open(self.data_path(task_id), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)

    def write_meta(
        self,
        task_id: str,
        url: str,
        digest: str,
        content_length: int,
        piece_size: int,
        pieces: list[PieceMeta],
        complete: bool,
        sha256: str,
    ) -> None:
        """Atomically write the metadata file."""
        record = {
            "task_id": task_id,
            "url": url,
            "digest": digest,
            "content_length": content_length,
            "piece_size": piece_size,
            "piece_digests": [p.digest for p in pieces],
            "complete": complete,
            "sha256": sha256,
        }
        path = self.meta_path(task_id)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record, indent=1))
        os.replace(tmp, path)

    def load(self, task_id: str) -> CacheEntry | None:
        """A complete entry whose content still matches every piece digest, else None (and it is removed)."""
        path = self.meta_path(task_id)
        try:
            record = json.loads(path.read_text())
            entry = _entry(task_id, record)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            entry = None
        if entry is None or not self._verify(entry):
            self.discard(task_id)
            return None
        return entry

    def _verify(self, entry: CacheEntry) -> bool:
        data = self.data_path(entry.task_id)
        try:
            if data.stat().st_size != entry.content_length:
                return False
        except OSError:
            return False
        return all(self.verify_piece(entry.task_id, piece) for piece in entry.pieces)

    def verify_piece(self, task_id: str, piece: PieceMeta) -> bool:
        """True when the piece's bytes on disk still match its digest."""
        parsed = piecedigest.parse(piece.digest)
        if parsed is None:
            return False
        algorithm, expected = parsed
        try:
            with self.data_path(task_id).open("rb") as f:
                f.seek(piece.offset)
                h = piecedigest.hasher(algorithm)
                left = piece.size
                while left:
                    chunk = f.read(min(left, _READ_CHUNK))
                    if not chunk:
                        return False
                    h.update(chunk)
                    left -= len(chunk)
        except OSError:
            return False
        return h.hexdigest() == expected

    def discard(self, task_id: str) -> None:
        """Remove a task's files."""
        for path in (self.meta_path(task_id), self.data_path(task_id)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _entry(task_id: str, record: dict[str, object]) -> CacheEntry | None:
    if record.get("task_id") != task_id or record.get("complete") is not True:
        return None
    length = record["content_length"]
    size = record["piece_size"]
    if "piece_digests" in record:
        digests = record["piece_digests"]
    else:  # written before piece digests named their algorithm: sha256 hex
        legacy = record["piece_sha256"]
        digests = [f"sha256:{sha}" for sha in legacy] if isinstance(legacy, list) else None
    if not isinstance(length, int) or not isinstance(size, int) or not isinstance(digests, list) or size <= 0:
        return None
    if len(digests) != piece_count(length, size):
        return None
    pieces = []
    for number, digest in enumerate(digests):
        if not isinstance(digest, str) or piecedigest.parse(digest) is None:
            return None
        offset, span = piece_span(number, length, size)
        pieces.append(PieceMeta(number, offset, span, digest.lower()))
    return CacheEntry(
        task_id, str(record["url"]), str(record.get("digest", "")), length, size, tuple(pieces), str(record["sha256"])
    )
