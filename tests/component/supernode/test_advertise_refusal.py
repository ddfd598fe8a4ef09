"""On a host with only loopback, supernode and dfdaemon listening on 0.0.0.0 refuse to start and say why."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from fixtures.processes import console_script


def in_loopback_only_namespace(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run argv in a new network namespace (only lo, up) that this test creates: nothing leaves it."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare")
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {probe.stderr.strip()}")
    script = f"ip link set lo up 2>/dev/null; exec {shlex.join(argv)}"
    return subprocess.run(
        ["unshare", "-rn", "sh", "-c", script], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["supernode", "--listen", "0.0.0.0:0"],
        ["dfdaemon", "--supernode", "127.0.0.1:8002", "--listen", "0.0.0.0", "--mirror", "off"],
    ],
)
def test_wildcard_listener_with_only_loopback_refuses(argv: list[str], tmp_path: Path) -> None:
    done = in_loopback_only_namespace([console_script(argv[0]), *argv[1:], "--data-dir", str(tmp_path / "d")])
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "only loopback" in lines[0] and "--advertise-ip" in lines[0], done.stderr
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())
