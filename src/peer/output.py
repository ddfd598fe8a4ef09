"""Where dfget's bytes go: a temp file renamed into place when complete, and the progress bar."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from dfcommon.content import ContentRequest
from dfcommon.errors import InvalidArgument, Unavailable


class Progress:
    """A one-line progress bar on a TTY stderr; silent otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.started = time.monotonic()
        self._last = 0.0
        self.total = -1  # the content's size, once seen (for dfget's deadline)

    def update(self, done: int, total: int, final: bool = False) -> None:
        """Record the size; redraw at most 10 times a second."""
        self.total = max(self.total, total)
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
        self.linked = False  # the temp file is a hard link to the daemon's cache file

    def write(self, data: bytes | memoryview) -> None:
        """Append data."""
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        self.written += len(data)

    def link_to(self, source: str, device: int, inode: int) -> bool:
        """Make the temp file a hard link to the cache file holding the content, so it is never copied (as
        Dragonfly does). False where that is impossible: another filesystem or mount namespace, or a file this
        user may not link (fs.protected_hardlinks), or another inode at that path."""
        if not os.path.isabs(source):
            return False
        link = self.path.with_name(self.path.name + ".link")
        try:
            os.link(source, link, follow_symlinks=False)
        except OSError:
            return False
        try:
            info = os.stat(link, follow_symlinks=False)
            same = (info.st_dev, info.st_ino) == (device, inode) and stat.S_ISREG(info.st_mode)
            if same:
                os.replace(link, self.path)
        except OSError:
            same = False
        if not same:  # another file at that path here (not the daemon's), or it vanished
            with contextlib.suppress(OSError):
                link.unlink()
            return False
        os.close(self.fd)
        self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        self.linked = True
        return True

    def follow(self, length: int) -> None:
        """Linked: the first length bytes are in place."""
        self.written = max(self.written, length)

    def check_length(self, length: int) -> None:
        """Raise when the output does not hold exactly length bytes."""
        size = os.fstat(self.fd).st_size if self.linked else self.written
        if size != length or self.written != length:
            raise Unavailable(f"the dfdaemon ended the download at {length} bytes, the output has {size}")

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
        if not self.linked:  # a linked file keeps the cache's mode
            os.chmod(self.path, 0o644 & ~_umask())
        os.replace(self.path, self.target)

    def rewind(self) -> None:
        """Drop what was written (to start over) with an empty temp file."""
        if self.linked:
            os.close(self.fd)
            self.fd = os.open(self.path.with_name(self.path.name + ".new"), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            os.replace(self.path.with_name(self.path.name + ".new"), self.path)
            self.linked = False
        else:
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


@dataclass
class Job:
    """One dfget download: what to fetch, under which limits, and where the bytes go."""

    request: ContentRequest
    no_back_source: bool
    rate_limit: int
    output: OutputFile
    progress: Progress
