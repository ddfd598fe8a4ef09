"""Disk space of the cache: what is free, and the one-line errors a failing cache disk becomes."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from dfcommon.errors import LocalDiskError, LocalDiskFull

# Errors of the cache disk itself: retrying the piece (from another parent) cannot help.
LOCAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG, errno.ENOMEM})
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})

# The cache directory cannot hold the content (full, read-only, failing); str() names the directory. A full disk
# is its subclass LocalDiskFull (RESOURCE_EXHAUSTED), which the registry mirror tells from a busy server.
CacheDiskError = LocalDiskError


def no_space(root: Path, needed: int | None, available: int | None = None) -> LocalDiskFull:
    """The error of a cache directory without room for needed more bytes (None: not known, e.g. metadata)."""
    tail = f", {max(0, available)} available" if available is not None else ""
    wanted = f" (needed {needed} bytes{tail})" if needed is not None else ""
    return LocalDiskFull(f"no space left on device in the cache directory {root}{wanted}")


def disk_error(exc: OSError, root: Path, needed: int | None = None) -> CacheDiskError:
    """The one-line error an OSError of the cache disk stands for (needed: bytes the write wanted, if known)."""
    if exc.errno in FULL_ERRNOS:
        return no_space(root, needed)
    if exc.errno == errno.EROFS:
        return CacheDiskError(f"the cache directory {root} is on a read-only file system")
    return CacheDiskError(f"cannot write to the cache directory {root}: {exc.strerror or exc}")


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on path's file system."""
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize
