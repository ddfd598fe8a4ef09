"""All tasks on disk under DATA_DIR/tasks: lookup, creation, reuse and garbage collection."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from peer.storage.partial import check_partial
from peer.storage.space import CacheDiskError, disk_error, free_bytes, no_space
from peer.storage.task_store import TaskMeta, TaskStore

log = logging.getLogger(__name__)


class Storage:
    """Owns every TaskStore; complete ones are reused across downloads and restarts, and so are the verified
    pieces of interrupted ones (partial tasks: see peer.storage.partial)."""

    def __init__(self, data_dir: Path, ttl_seconds: float = 6 * 3600, quota_bytes: int = 20 << 30) -> None:
        self.directory = data_dir.absolute()  # the cache directory users know (--data-dir)
        self.root = data_dir / "tasks"
        self.root.mkdir(parents=True, exist_ok=True)
        self.ttl_seconds = ttl_seconds
        self.quota_bytes = quota_bytes
        self._tasks: dict[str, TaskStore] = {}
        self.on_evict: Callable[[list[str]], None] | None = None  # told of tasks removed to make room
        # Set while the daemon stops: downloads cancelled then leave their verified pieces for the next start.
        self.keep_partials = False
        self._load()

    def _load(self) -> None:
        for directory in sorted(self.root.iterdir()):
            try:
                store = TaskStore.load(directory, self.directory)
            except (OSError, ValueError, TypeError) as exc:
                log.warning("dropping unreadable cache entry %s: %s", directory.name, exc)
                shutil.rmtree(directory, ignore_errors=True)
                continue
            try:
                keep = check_partial(store, self.ttl_seconds) if not store.complete else True
            except (OSError, ValueError) as exc:
                log.warning("dropping unreadable partial task %s: %s", directory.name, exc)
                keep = False
            if not keep or store.changed_since_complete():
                # An interrupted download with nothing worth keeping, or content changed outside the daemon.
                store.close()
                shutil.rmtree(directory, ignore_errors=True)
                continue
            if not store.complete:
                log.info(
                    "kept partial task=%s: %d of %d pieces verified",
                    store.task_id,
                    store.bitmap.count,
                    store.meta.piece_count,
                )
            self._tasks[store.task_id] = store

    def get(self, task_id: str) -> TaskStore | None:
        """The task's store, complete or in progress (not content changed since it was verified)."""
        store = self._tasks.get(task_id)
        if store is None or store.invalid:
            return None
        if store.changed_since_complete():
            log.warning("cache file of task=%s was modified outside the daemon; dropping it", task_id)
            store.invalid = True
            if not store.pins:  # else GC removes it once its readers are gone
                self.remove(task_id)
            return None
        return store

    def get_complete(self, task_id: str) -> TaskStore | None:
        """The task's store when it holds the whole verified content."""
        store = self.get(task_id)
        return store if store is not None and store.complete else None

    def get_partial(self, task_id: str) -> TaskStore | None:
        """The task's incomplete store, to go on with (its held pieces are verified), after making room on the cache
        disk for the rest of its content (CacheDiskError when there is none); None when there is no such store."""
        store = self.get(task_id)
        if store is None or store.complete:
            return None
        store.touch()
        store.pins += 1  # not a candidate for eviction while room is made for it
        try:
            self.make_room(max(0, store.meta.content_length - store.disk_usage()), exclude=store)
        finally:
            store.pins -= 1
        return store

    def create(self, task_id: str, url: str, digest: str, content_length: int, piece_size: int) -> TaskStore:
        """A fresh store for a download (replaces an incomplete one); CacheDiskError when the disk cannot hold
        content_length more bytes even after evicting unpinned entries, or refuses the new files (nothing of the
        task is left then)."""
        old = self._tasks.pop(task_id, None)
        if old is not None:
            old.close()
        if content_length > 0:
            self.make_room(content_length)
        meta = TaskMeta(task_id, url, digest, content_length, piece_size)
        try:
            store = TaskStore.create(self.root / task_id, meta, self.directory)
        except OSError as exc:
            shutil.rmtree(self.root / task_id, ignore_errors=True)
            raise disk_error(exc, self.directory, max(content_length, 0) or None) from None
        self._tasks[task_id] = store
        return store

    def abandon(self, task_id: str, keep_pieces: bool) -> None:
        """A download of the task failed: with keep_pieces its verified pieces stay as a partial task, which the
        next download of the content goes on with (and which eviction takes first); otherwise its files go."""
        store = self._tasks.get(task_id)
        if keep_pieces and store is not None and not store.invalid and not store.complete and store.bitmap.count:
            store.interrupted = True
            log.info("keeping the %d verified pieces of failed task=%s for the next try", store.bitmap.count, task_id)
            return
        self.remove(task_id)

    def remove(self, task_id: str) -> None:
        """Delete a task's files (e.g. content that failed verification). While the daemon stops (keep_partials),
        an incomplete task's verified pieces stay on disk for the next start instead."""
        store = self._tasks.pop(task_id, None)
        if store is not None:
            store.close()
            if self.keep_partials and not store.complete and not store.invalid and store.bitmap.count:
                log.info("keeping the %d verified pieces of task=%s for the next start", store.bitmap.count, task_id)
                return
        shutil.rmtree(self.root / task_id, ignore_errors=True)

    def usage(self) -> int:
        """Bytes the cache takes or has promised: a download in progress counts at its full length."""
        return sum(s.footprint() for s in self._tasks.values())

    def available(self, exclude: TaskStore | None = None) -> int:
        """Free bytes on the cache disk not yet promised to a download in progress (but exclude)."""
        promised = sum(s.footprint() - s.disk_usage() for s in self._tasks.values() if s is not exclude)
        return free_bytes(self.root) - promised

    def make_room(self, needed: int, exclude: TaskStore | None = None) -> None:
        """Evict unpinned entries (complete, or partial from before a restart), least recently used first, until
        needed more bytes fit on the cache disk; CacheDiskError (naming the directory) when they still do not. The
        quota is left to gc(): it is the cache's size, not a limit on one download. exclude: the download asking
        (its own promise is that room)."""
        removed: list[str] = []
        candidates = sorted(
            (s for s in self._tasks.values() if s.pins == 0 and (s.complete or s.invalid or s.interrupted)),
            key=lambda s: (not s.invalid, s.meta.last_used),
        )
        for store in candidates:
            if self.available(exclude) >= needed:
                break
            removed.append(store.task_id)
            self.remove(store.task_id)
        if removed:
            log.info("evicted %d cached task(s) to make room for %d bytes: %s", len(removed), needed, removed)
            if self.on_evict is not None:
                self.on_evict(removed)
        available = self.available(exclude)
        if available < needed:
            raise no_space(self.directory, needed, available)

    def entries(self) -> list[TaskStore]:
        """Every stored task."""
        return list(self._tasks.values())

    def gc(self, now: float | None = None) -> list[str]:
        """Remove unpinned tasks (complete or partial) idle past the TTL, then least recently used ones over quota."""
        now = time.time() if now is None else now
        removed: list[str] = []
        idle = [s for s in self._tasks.values() if s.pins == 0 and (s.complete or s.invalid or s.interrupted)]
        for store in idle:
            if store.invalid or now - store.meta.last_used > self.ttl_seconds:
                removed.append(store.task_id)
        for task_id in removed:
            self.remove(task_id)
        usage = self.usage()
        for store in sorted(self._tasks.values(), key=lambda s: s.meta.last_used):
            if usage <= self.quota_bytes:
                break
            if store.pins or not (store.complete or store.interrupted):
                continue
            usage -= store.footprint()
            removed.append(store.task_id)
            self.remove(store.task_id)
        for task_id in removed:
            log.info("cache gc removed task=%s", task_id)
        return removed

    def close(self) -> None:
        """Close every open file and save last-use times."""
        for store in self._tasks.values():
            if store.complete or (self.keep_partials and store.bitmap.count):
                try:
                    store.save_meta()
                except CacheDiskError as exc:  # only the last-use time is lost
                    log.warning("cannot save task=%s: %s", store.task_id, exc)
            store.close()
        self._tasks.clear()
