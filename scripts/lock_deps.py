"""Write requirements.lock: every runtime and dev dependency of pyproject.toml, pinned with hashes.

Usage: python scripts/lock_deps.py [--upgrade] [--upgrade-package NAME ...]

Needs pip-tools (pip install pip-tools). Resolves for the running interpreter (CI's is CPython 3.11 on
Linux) against PyPI alone: a machine's own pip configuration (extra indexes, local wheel folders) is ignored,
so the lock names only what PyPI serves. Without --upgrade the pins already in requirements.lock stay
where they are; --upgrade-package moves one package (and what it needs) to its newest release.
CI installs the lock with `pip install --require-hashes -r requirements.lock` and audits it with
scripts/audit_deps.py.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = "requirements.lock"
INDEX = "https://pypi.org/simple"


def main() -> int:
    """Run pip-compile over pyproject.toml with the dev extras into requirements.lock."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upgrade", action="store_true", help="move every pin to its newest release")
    parser.add_argument("--upgrade-package", action="append", default=[], metavar="NAME", help="move one pin")
    args = parser.parse_args()
    command = [
        sys.executable,
        "-m",
        "piptools",
        "compile",
        "--quiet",
        "--generate-hashes",
        "--allow-unsafe",  # setuptools (grpcio-tools needs it) is pinned too: --require-hashes wants every package
        "--strip-extras",
        "--extra=dev",
        f"--index-url={INDEX}",
        "--no-emit-index-url",
        "--no-emit-find-links",
        f"--output-file={LOCK}",
    ]
    if args.upgrade:
        command.append("--upgrade")
    command += [f"--upgrade-package={name}" for name in args.upgrade_package]
    command.append("pyproject.toml")
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["CUSTOM_COMPILE_COMMAND"] = "python scripts/lock_deps.py"
    if importlib.util.find_spec("piptools") is None:
        print("lock_deps: error: pip-tools is not installed: pip install pip-tools", file=sys.stderr)
        return 2
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
