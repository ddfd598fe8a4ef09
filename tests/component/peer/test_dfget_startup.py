"""dfget starts fast: every host of a swarm starts one at the same moment, so what it imports is inside the makespan.

It talks to the local dfdaemon over gRPC; the dfdaemon's configuration (fetch policy, origin client) and the package
metadata (read by --version only) are not its business and cost ~0.1 s of CPU per start when imported. Nor are uvloop
(~20 ms; only an embedded peer runs on it) and ctypes.util (find_library runs `ldconfig -p`).
"""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("peer.config", "dfcommon.fetchpolicy", "dfcommon.origin_access", "peer.origin", "importlib.metadata")
# What a dfget that uses the local dfdaemon runs besides the download: the malloc tuning and its event loop.
LOOP_PROBE = """
import asyncio, sys, peer.dfget
from dfcommon.malloc import limit_malloc_arenas, tune_malloc
assert tune_malloc() and limit_malloc_arenas()
loops = []
async def note_loop():
    loops.append(type(asyncio.get_running_loop()).__module__)
peer.dfget.run_loop(note_loop(), embedded_peer=EMBEDDED)
print(loops[0], " ".join(m for m in HEAVY if m in sys.modules))
"""


def test_dfget_imports_none_of_the_dfdaemons_configuration() -> None:
    probe = f"import sys, peer.dfget; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []


def test_dfget_through_a_dfdaemon_runs_on_asyncios_loop_without_uvloop_or_find_library() -> None:
    probe = LOOP_PROBE.replace("EMBEDDED", "False").replace("HEAVY", repr((*HEAVY, "uvloop", "ctypes.util")))
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["asyncio.unix_events"]


def test_an_embedded_peer_runs_on_uvloop() -> None:
    probe = LOOP_PROBE.replace("EMBEDDED", "True").replace("HEAVY", "()")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["uvloop"]
