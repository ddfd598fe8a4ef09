"""generated/ must equal a fresh run of scripts/generate_protos.py over protos/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_generated_code_is_fresh() -> None:
    """`generate_protos.py --check` regenerates into a temporary folder and fails when generated/ differs."""
    result = subprocess.run(
        [sys.executable, "scripts/generate_protos.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"generated/ is stale; run python scripts/generate_protos.py\n{result.stderr}"
