"""Disk space of the cache: what is free, and the one-line errors a failing cache disk becomes."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import grpc

from dfcommon.errors import DandelionError

# Errors of the cache disk itself: retrying the piece (from another parent) cannot help.
LOCAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG, errno.ENOMEM})
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class CacheDiskError(DandelionError):
    """The cache directory cannot hold the content (full, read-only, failing); str() names the directory."""

    code = grpc.StatusCode.INTERNAL


def no_space(root: Path, needed: int, available: int | None = None) -> CacheDiskError:
    """The error of a cache directory without room for needed more bytes."""
    tail = f", {max(0, available)} available" if available is not None else ""
    return CacheDiskError(
        f"no space left on device in the cache directory {root} (needed {needed} bytes{tail})",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )


def disk_error(exc: OSError, root: Path, needed: int) -> CacheDiskError:
    """The one-line error an OSError of the cache disk stands for."""
    if exc.errno in FULL_ERRNOS:
        return no_space(root, needed)
    if exc.errno == errno.EROFS:
        return CacheDiskError(f"the cache directory {root} is on a read-only file system")
    return CacheDiskError(f"cannot write to the cache directory {root}: {exc.strerror or exc}")


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on path's file system."""
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize
