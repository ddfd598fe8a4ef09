"""`python -m tests.soak [--minutes N] [--seed S] [--faults ...]`: the soak from the command line; exit 1 on a
violated invariant. Run it from the repository root."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType

_TESTS = Path(__file__).resolve().parent.parent
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))  # for `fixtures`, as pytest's rootdir conftest does


def main() -> int:
    """Parse flags (and DANDELION_SOAK_*), run the soak, return 0 when every invariant held."""
    from .config import config_from
    from .driver import Soak

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt  # unwinds through the driver, which stops every process it started

    signal.signal(signal.SIGTERM, interrupted)
    summary = Soak(config_from(sys.argv[1:])).run()
    return 1 if summary["violations"] or summary["harness_errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
