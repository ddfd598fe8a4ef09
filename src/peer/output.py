"""Where dfget's bytes go: a temp file renamed into place when complete, and the progress bar."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import tempfile
import time
from pathlib import Path

from dfcommon.errors import InvalidArgument, Unavailable


class Progress:
    """A one-line progress bar on a TTY stderr; silent otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.started = time.monotonic()
        self._last = 0.0

    def update(self, done: int, total: int, final: bool = False) -> None:
        """Redraw at most 10 times a second."""
        now = time.monotonic()
        if not self.enabled or (not final and now - self._last < 0.1):
            return
        self._last = now
        rate = done / max(now - self.started, 1e-6)
        percent = f"{100 * done / total:5.1f}%" if total > 0 else "  ?  "
        size = f"{done / 1e6:,.1f}/{total / 1e6:,.1f} MB" if total >= 0 else f"{done / 1e6:,.1f} MB"
        sys.stderr.write(f"\r{percent} {size} {rate / 1e6:,.1f} MB/s ")
        if final:
            sys.stderr.write("\n")
        sys.stderr.flush()


class OutputFile:
    """A temp file beside the target, renamed over it only when complete; removed on failure."""

    def __init__(self, target: Path) -> None:
        self.target = target
        directory = target.parent if str(target.parent) else Path(".")
        if not directory.is_dir():
            raise InvalidArgument(f"output directory {directory} does not exist")
        if target.is_dir():
            raise InvalidArgument(f"output {target} is a directory")
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".dfget", dir=directory)
        self.fd = fd
        self.path = Path(name)
        self.written = 0

    def write(self, data: bytes | memoryview) -> None:
        """Append data."""
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        self.written += len(data)

    def copy_from(self, source_fd: int, offset: int, count: int) -> None:
        """Append count bytes of source_fd from offset (in the kernel: copy_file_range, else sendfile)."""
        while count > 0:
            try:
                n = os.copy_file_range(source_fd, self.fd, count, offset)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                n = os.sendfile(self.fd, source_fd, offset, count)
            if n <= 0:
                raise Unavailable("the dfdaemon's cache file is shorter than it says")
            offset += n
            count -= n
            self.written += n

    def commit(self, flush: bool = False) -> None:
        """Rename into place (with flush: fsync first, so it survives a power loss)."""
        if flush:
            os.fsync(self.fd)
        os.close(self.fd)
        self.fd = -1
        os.chmod(self.path, 0o644 & ~_umask())
        os.replace(self.path, self.target)

    def rewind(self) -> None:
        """Drop what was written (to start over)."""
        os.ftruncate(self.fd, 0)
        os.lseek(self.fd, 0, os.SEEK_SET)
        self.written = 0

    def discard(self) -> None:
        """Remove the temp file."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
