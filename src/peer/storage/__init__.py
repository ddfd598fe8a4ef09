"""Local content store: per-task data files, piece bitmaps and metadata, with GC."""

from peer.storage.store import Storage
from peer.storage.task_store import TaskMeta, TaskStore

__all__ = ["Storage", "TaskMeta", "TaskStore"]
