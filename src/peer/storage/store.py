"""All tasks on disk under DATA_DIR/tasks: lookup, creation, reuse and garbage collection."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from peer.storage.task_store import TaskMeta, TaskStore

log = logging.getLogger(__name__)


class Storage:
    """Owns every TaskStore; complete ones are reused across downloads and restarts."""

    def __init__(self, data_dir: Path, ttl_seconds: float = 6 * 3600, quota_bytes: int = 20 << 30) -> None:
        self.root = data_dir / "tasks"
        self.root.mkdir(parents=True, exist_ok=True)
        self.ttl_seconds = ttl_seconds
        self.quota_bytes = quota_bytes
        self._tasks: dict[str, TaskStore] = {}
        self._load()

    def _load(self) -> None:
        for directory in sorted(self.root.iterdir()):
            try:
                store = TaskStore.load(directory)
            except (OSError, ValueError, TypeError) as exc:
                log.warning("dropping unreadable cache entry %s: %s", directory.name, exc)
                shutil.rmtree(directory, ignore_errors=True)
                continue
            if not store.complete or store.changed_since_complete():
                # An interrupted download (never checked as a whole), or content changed outside the daemon.
                store.close()
                shutil.rmtree(directory, ignore_errors=True)
                continue
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

    def create(self, task_id: str, url: str, digest: str, content_length: int, piece_size: int) -> TaskStore:
        """A fresh store for a download (replaces an incomplete one)."""
        old = self._tasks.pop(task_id, None)
        if old is not None:
            old.close()
        meta = TaskMeta(task_id, url, digest, content_length, piece_size)
        store = TaskStore.create(self.root / task_id, meta)
        self._tasks[task_id] = store
        return store

    def remove(self, task_id: str) -> None:
        """Delete a task's files (e.g. content that failed verification)."""
        store = self._tasks.pop(task_id, None)
        if store is not None:
            store.close()
        shutil.rmtree(self.root / task_id, ignore_errors=True)

    def entries(self) -> list[TaskStore]:
        """Every stored task."""
        return list(self._tasks.values())

    def gc(self, now: float | None = None) -> list[str]:
        """Remove unpinned complete tasks idle past the TTL, then least recently used ones over quota."""
        now = time.time() if now is None else now
        removed: list[str] = []
        idle = [s for s in self._tasks.values() if s.pins == 0 and (s.complete or s.invalid)]
        for store in idle:
            if store.invalid or now - store.meta.last_used > self.ttl_seconds:
                removed.append(store.task_id)
        for task_id in removed:
            self.remove(task_id)
        usage = sum(s.disk_usage() for s in self._tasks.values())
        for store in sorted(self._tasks.values(), key=lambda s: s.meta.last_used):
            if usage <= self.quota_bytes:
                break
            if store.pins or not store.complete:
                continue
            usage -= store.disk_usage()
            removed.append(store.task_id)
            self.remove(store.task_id)
        for task_id in removed:
            log.info("cache gc removed task=%s", task_id)
        return removed

    def close(self) -> None:
        """Close every open file and save last-use times."""
        for store in self._tasks.values():
            if store.complete:
                store.save_meta()
            store.close()
        self._tasks.clear()
