"""dfget starts fast: every host of a swarm starts one at the same moment, so what it imports is inside the makespan.

It talks to the local dfdaemon over gRPC; the dfdaemon's configuration (fetch policy, origin client) and the package
metadata (read by --version only) are not its business and cost ~0.1 s of CPU per start when imported.
"""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("peer.config", "dfcommon.fetchpolicy", "dfcommon.origin_access", "peer.origin", "importlib.metadata")


def test_dfget_imports_none_of_the_dfdaemons_configuration() -> None:
    probe = f"import sys, peer.dfget; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []
