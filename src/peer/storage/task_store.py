"""One task's content on disk: data file, piece journal (peer.storage.journal), metadata JSON (never headers).

Writes of the length and metadata raise CacheDiskError naming the cache directory (the disk is full, read-only or
failing) and leave the store as it was: in particular content is never marked complete in memory when its
metadata could not be written."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from dfcommon import piecedigest
from dfcommon.pieces import piece_count, piece_span
from peer.storage.bitmap import Bitmap
from peer.storage.journal import JOURNAL, JOURNAL_TMP, PieceJournal
from peer.storage.space import disk_error

DATA = "data"
BITMAP = "bitmap"  # the piece map of earlier versions (complete tasks only are still read with it)
META = "meta.json"
META_TMP = META + ".tmp"


@dataclass
class TaskMeta:
    """What is known about a stored task. url is the display URL (no credentials)."""

    task_id: str
    url: str
    digest: str
    content_length: int  # -1 while unknown
    piece_size: int
    complete: bool = False
    last_used: float = 0.0
    data_mtime_ns: int = 0  # of the data file when it was marked complete (0: not recorded)

    @property
    def piece_count(self) -> int:
        """Number of pieces (0 while the length is unknown)."""
        return piece_count(self.content_length, self.piece_size) if self.content_length >= 0 else 0


class TaskStore:
    """The data file of one task; pieces are written only after verification and then marked held."""

    def __init__(
        self,
        directory: Path,
        meta: TaskMeta,
        bitmap: Bitmap,
        cache_dir: Path | None = None,
        digests: dict[int, str] | None = None,
    ) -> None:
        self.directory = directory
        # The cache directory users know (--data-dir, holding tasks/<id>), named in disk errors.
        self.cache_dir = cache_dir if cache_dir is not None else directory.absolute().parent.parent
        self.meta = meta
        self.bitmap = bitmap
        self.digests = digests if digests is not None else {}  # "<algorithm>:<hex>" of each held piece
        self.pins = 0  # readers and downloads using the store; GC skips pinned stores
        self.invalid = False  # changed outside the daemon: never served again, removed when unpinned
        self.interrupted = False  # an incomplete task loaded at start-up (a download that a restart cut)
        self._lock = threading.Lock()
        self._fd = os.open(directory / DATA, os.O_RDWR | os.O_CREAT, 0o644)
        self._journal = PieceJournal(directory)
        self.closed = False
        self._prepared: TaskMeta | None = None  # complete metadata written by prepare_complete, not in effect yet

    @classmethod
    def create(cls, directory: Path, meta: TaskMeta, cache_dir: Path | None = None) -> TaskStore:
        """A new, empty store (replacing whatever was in directory); OSError when the disk refuses it (the caller
        removes directory)."""
        directory.mkdir(parents=True, exist_ok=True)
        for name in (DATA, BITMAP, META, JOURNAL, JOURNAL_TMP):
            (directory / name).unlink(missing_ok=True)
        meta.last_used = time.time()
        meta.complete = False
        store = cls(directory, meta, Bitmap(meta.piece_count), cache_dir)
        try:
            if meta.content_length > 0:
                os.ftruncate(store._fd, meta.content_length)
            store._write_meta()
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def load(cls, directory: Path, cache_dir: Path | None = None) -> TaskStore:
        """Open a stored task (raises OSError/ValueError when its files are unusable). A complete task holds every
        piece; an incomplete one the pieces its journal names (not checked here: see peer.storage.partial)."""
        meta = TaskMeta(**json.loads((directory / META).read_text()))
        if meta.piece_size <= 0:
            raise ValueError(f"piece size {meta.piece_size}")
        digests: dict[int, str] = {}
        if (directory / JOURNAL).exists():
            digests = PieceJournal.parse_file(directory / JOURNAL)
        elif not meta.complete:
            raise ValueError("an interrupted download without a piece journal (written by an earlier version)")
        count = meta.piece_count
        digests = {n: d for n, d in digests.items() if n < count}
        bitmap = Bitmap(count)
        for number in range(count) if meta.complete else digests:
            bitmap.add(number)
        store = cls(directory, meta, bitmap, cache_dir, digests)
        store.interrupted = not meta.complete
        return store

    @property
    def task_id(self) -> str:
        """The task id."""
        return self.meta.task_id

    @property
    def complete(self) -> bool:
        """True when every piece is held and the content was verified."""
        return self.meta.complete

    def has(self, number: int) -> bool:
        """True when the piece is stored and verified."""
        return number in self.bitmap

    def missing(self) -> list[int]:
        """Pieces not held yet."""
        return self.bitmap.missing(self.meta.piece_count)

    def all_held(self) -> bool:
        """True when the length is known and every piece is held."""
        return self.meta.content_length >= 0 and self.bitmap.count >= self.meta.piece_count

    def span(self, number: int) -> tuple[int, int]:
        """(offset, size) of a piece."""
        if self.meta.content_length < 0:
            return number * self.meta.piece_size, self.meta.piece_size
        return piece_span(number, self.meta.content_length, self.meta.piece_size)

    def completed_length(self) -> int:
        """Bytes held."""
        held = self.bitmap.count * self.meta.piece_size
        count = self.meta.piece_count
        if count and (count - 1) in self.bitmap:  # the last piece may be short
            held -= self.meta.piece_size - self.span(count - 1)[1]
        return held

    def write_piece(self, number: int, chunks: Sequence[bytes | memoryview], digest: str = "") -> None:
        """Store a verified piece at its offset and mark it held (blocking: run in a thread). digest: what the
        piece was verified against ("<algorithm>:<hex>"); without one, its BLAKE3 is computed for the journal."""
        offset, size = self.span(number)
        total = sum(len(c) for c in chunks)
        if total != size and self.meta.content_length >= 0:
            raise ValueError(f"piece {number} has {total} bytes, want {size}")
        written = os.pwritev(self._fd, chunks, offset)
        while written < total:  # short write: finish the rest
            joined = b"".join(chunks)[written:]
            written += os.pwrite(self._fd, joined, offset + written)
        if not digest:
            digest = piecedigest.digest_of(piecedigest.DEFAULT_ALGORITHM, chunks)
        with self._lock:
            # The data is in the file before the journal names the piece (see peer.storage.journal).
            self._journal.append(number, digest)
            self.bitmap.add(number)
            self.digests[number] = digest

    def piece_digest(self, number: int) -> str:
        """The digest a held piece was verified against or written with ("" when not held)."""
        return self.digests.get(number, "")

    def keep_only(self, numbers: set[int]) -> None:
        """Forget every held piece not in numbers (pieces that failed their check), journal included."""
        with self._lock:
            self.digests = {n: d for n, d in self.digests.items() if n in numbers}
            self.bitmap = Bitmap(self.meta.piece_count)
            for number in self.digests:
                self.bitmap.add(number)
            self._journal.rewrite(sorted(self.digests.items()))

    def data_identity(self) -> tuple[str, int, int]:
        """(absolute path, st_dev, st_ino) of the data file."""
        info = os.fstat(self._fd)
        return os.path.abspath(self.directory / DATA), info.st_dev, info.st_ino

    def read(self, offset: int, size: int) -> bytes:
        """Bytes of held content (blocking: pread)."""
        return os.pread(self._fd, size, offset)

    def read_into(self, offset: int, buffer: memoryview) -> int:
        """Held content from offset into buffer (blocking: preadv, no allocation); the bytes read, 0 at the end."""
        return os.preadv(self._fd, [buffer], offset)

    def reshape(self, content_length: int, piece_size: int) -> None:
        """Take another length and piece size, while no piece is held (otherwise nothing changes), or in a partial
        task kept from before a restart: the pieces it holds are dropped then (the swarm cuts the content otherwise
        now, or its length changed)."""
        if (content_length, piece_size) == (self.meta.content_length, self.meta.piece_size) or self.complete:
            return
        if self.bitmap.count and not self.interrupted:
            return
        before = self.meta.content_length, self.meta.piece_size
        try:
            if self.bitmap.count:
                self.keep_only(set())
                os.ftruncate(self._fd, 0)
            self.meta.content_length = content_length
            self.meta.piece_size = piece_size
            os.ftruncate(self._fd, content_length)
            self._write_meta()
        except OSError as exc:
            self.meta.content_length, self.meta.piece_size = before
            raise disk_error(exc, self.cache_dir) from None

    def set_length(self, content_length: int) -> None:
        """Fix the length of content whose length was unknown until its end."""
        self.meta.content_length = content_length
        try:
            os.ftruncate(self._fd, content_length)
            self._write_meta()
        except OSError as exc:
            raise disk_error(exc, self.cache_dir) from None

    def prepare_complete(self) -> None:
        """Write the metadata recording the content as whole, not yet in effect (blocking): a disk that refuses it
        does so here (CacheDiskError), before any reader is told the content is whole; mark_complete() then
        flushes the data and puts it in effect without writing a byte more."""
        try:
            meta = replace(self.meta, complete=True, data_mtime_ns=os.fstat(self._fd).st_mtime_ns)
            self._write_tmp(meta)
        except OSError as exc:
            raise disk_error(exc, self.cache_dir) from None
        self._prepared = meta

    def mark_complete(self) -> None:
        """Flush the data and record the content as whole and verified (blocking); CacheDiskError, the content
        still incomplete, when the disk refuses the flush or the metadata."""
        prepared, self._prepared = self._prepared, None
        try:
            os.fsync(self._fd)
            self._journal.sync()
            meta = prepared or replace(self.meta, complete=True, data_mtime_ns=os.fstat(self._fd).st_mtime_ns)
            if prepared is None:
                self._write_tmp(meta)
            os.replace(self.directory / META_TMP, self.directory / META)  # only after the data is on disk
        except OSError as exc:
            (self.directory / META_TMP).unlink(missing_ok=True)
            raise disk_error(exc, self.cache_dir) from None
        self.meta.complete = True
        self.meta.data_mtime_ns = meta.data_mtime_ns

    def changed_since_complete(self) -> bool:
        """True when the complete content's file was written or resized since it was verified: dfget hard-links
        its output to this file where it can, and a user may then modify that output."""
        if not self.meta.complete or not self.meta.data_mtime_ns:
            return False
        try:
            info = os.fstat(self._fd)
        except OSError:
            return True
        return info.st_mtime_ns != self.meta.data_mtime_ns or info.st_size != self.meta.content_length

    def touch(self) -> None:
        """Record a use (for TTL-based GC)."""
        self.meta.last_used = time.time()

    def save_meta(self) -> None:
        """Write meta.json atomically; CacheDiskError when the disk refuses it."""
        try:
            self._write_meta()
        except OSError as exc:
            raise disk_error(exc, self.cache_dir) from None

    def _write_meta(self) -> None:
        self._write_tmp(self.meta)
        try:
            os.replace(self.directory / META_TMP, self.directory / META)
        except OSError:
            (self.directory / META_TMP).unlink(missing_ok=True)
            raise

    def _write_tmp(self, meta: TaskMeta) -> None:
        tmp = self.directory / META_TMP
        try:
            tmp.write_text(json.dumps(asdict(meta)))
        except OSError:
            tmp.unlink(missing_ok=True)
            raise

    def disk_usage(self) -> int:
        """Bytes the data file takes on disk."""
        try:
            return os.fstat(self._fd).st_blocks * 512
        except OSError:
            return 0

    def footprint(self) -> int:
        """Bytes the task counts for in the cache: what it takes on disk, and for a download in progress (pinned)
        the whole content it will take (the data file is sparse until then); a partial task kept from an interrupted
        download counts what it holds."""
        used = self.disk_usage()
        return used if self.complete or (self.interrupted and not self.pins) else max(used, self.meta.content_length)

    def close(self) -> None:
        """Close the files."""
        if not self.closed:
            self.closed = True
            os.close(self._fd)
            self._journal.close()
