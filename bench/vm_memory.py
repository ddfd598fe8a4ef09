"""Fair page-cache conditions for timed runs on these VMs."""

from __future__ import annotations

import subprocess
from pathlib import Path


def warm_free_memory(work: Path, size: int) -> None:
    """Write and delete a scratch file of `size` bytes, so the next writer finds warm free memory.

    These VMs (Firecracker, free page reporting) hand freed memory back to the host; the first touch of such memory
    costs ~1.7 s/GiB (dd into the page cache: ~580 MB/s cold, ~5.5 GB/s warm). Run before each timed transfer, on
    both sides alike, so neither pays that for the other's freed files.
    """
    scratch = work / "warm.scratch"
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={scratch}", "bs=16M", f"count={max(1, size >> 24)}"],
        check=True,
        capture_output=True,
    )
    scratch.unlink()
