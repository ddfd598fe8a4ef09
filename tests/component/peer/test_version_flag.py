"""--version on every command prints the installed package's version and exits 0."""

from __future__ import annotations

import subprocess
from importlib import metadata

import pytest
from fixtures.processes import console_script


@pytest.mark.parametrize("argv", [["supernode"], ["dfdaemon"], ["dfget"], ["dfget", "preheat"]])
def test_version_flag(argv: list[str]) -> None:
    done = subprocess.run([console_script(argv[0]), *argv[1:], "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    expected = metadata.version("dandelion")
    assert done.stdout.strip() == f"{' '.join(argv)} {expected}"
