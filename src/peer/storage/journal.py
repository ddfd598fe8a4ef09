"""The piece journal of one task: an append-only file with a line per verified piece and its digest.

A line is `NUMBER ALGORITHM:HEX CRC32` (the CRC, 8 hex digits, covers `NUMBER ALGORITHM:HEX`). A piece's line is
appended only after its data was written to the data file, so after a SIGKILL every line names a piece whose bytes
are in the file (the page cache keeps both in order). A power loss may lose data whose line survived: a partial
task's pieces are therefore checked against their digests when the daemon starts (peer.storage.partial), and a
torn or garbled line ends the journal there. The digest is the one the piece was verified against (the seed's),
or one computed when it was written (BLAKE3) for pieces that came from the origin without one.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable
from pathlib import Path

from dfcommon import piecedigest

JOURNAL = "pieces"
JOURNAL_TMP = JOURNAL + ".tmp"


def _line(number: int, digest: str) -> bytes:
    body = f"{number} {digest}"
    return f"{body} {zlib.crc32(body.encode()):08x}\n".encode()


def parse(data: bytes) -> tuple[dict[int, str], int]:
    """({piece number: digest}, bytes of well-formed lines) of a journal's content; reading stops at the first
    line that is torn, garbled or fails its CRC (a later line for the same piece replaces an earlier one)."""
    pieces: dict[int, str] = {}
    good = 0
    for raw in data.splitlines(keepends=True):
        if not raw.endswith(b"\n"):
            break
        fields = raw.decode("ascii", "replace").split()
        if len(fields) != 3 or not fields[0].isdigit() or len(fields[2]) != 8:
            break
        number, digest, crc = int(fields[0]), fields[1], fields[2]
        if f"{zlib.crc32(f'{number} {digest}'.encode()):08x}" != crc or piecedigest.parse(digest) is None:
            break
        pieces[number] = digest
        good += len(raw)
    return pieces, good


class PieceJournal:
    """The open journal file of a task: append a verified piece, read all, rewrite."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / JOURNAL
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, number: int, digest: str) -> None:
        """Record a piece whose data is written (one write() call: a SIGKILL never leaves half a line)."""
        os.write(self._fd, _line(number, digest))

    @staticmethod
    def parse_file(path: Path) -> dict[int, str]:
        """The pieces a journal file records, cutting a torn or garbled tail off the file."""
        data = path.read_bytes()
        pieces, good = parse(data)
        if good < len(data):
            os.truncate(path, good)
        return pieces

    def rewrite(self, pieces: Iterable[tuple[int, str]]) -> None:
        """Replace the journal by exactly these pieces (atomically: a new file renamed over the old one)."""
        tmp = self.path.with_name(JOURNAL_TMP)
        try:
            tmp.write_bytes(b"".join(_line(n, d) for n, d in pieces))
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def sync(self) -> None:
        """Flush the journal to the disk."""
        os.fsync(self._fd)

    def close(self) -> None:
        """Close the file."""
        os.close(self._fd)
