"""The released protobuf contract, and the check that protos/ breaks nothing in it.

Usage: python scripts/protos_release.py check [--buf PATH] [--protos DIR]
       python scripts/protos_release.py write [--buf PATH]

The .proto files are the public contract: clients in other languages are built from them. Each release keeps its
contract as a buf image in protos/released/VERSION.txtpb (text format, no source info). `check` runs `buf breaking`
(buf.yaml's FILE rules: a deleted or renumbered field, message, enum value or RPC, a changed type or name, a changed
file option all break generated code) against the newest of them; CI runs it. Protos evolve compatibly: add fields
and RPCs, deprecate (`[deprecated = true]`, `reserved`) rather than delete. `write` records today's protos as the
release of pyproject.toml's version, once per version: a release runs it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RELEASED = ROOT / "protos" / "released"
NODE_BUF = ROOT / "tests" / "contract" / "node" / "node_modules" / ".bin" / "buf"


def version_key(path: Path) -> tuple[int, ...]:
    """A release file's version as numbers (0.10.0 after 0.9.0)."""
    return tuple(int(part) for part in path.name.removesuffix(".txtpb").split("."))


def newest_release() -> Path:
    """The newest released contract."""
    releases = sorted(RELEASED.glob("*.txtpb"), key=version_key)
    if not releases:
        sys.exit(f"no released contract in {RELEASED}: run `python scripts/protos_release.py write`")
    return releases[-1]


def find_buf(given: str | None) -> str:
    """buf: the one given, on PATH, or the one the contract tests install with npm."""
    buf = given or shutil.which("buf") or (str(NODE_BUF) if NODE_BUF.exists() else None)
    if buf is None:
        sys.exit("buf not found: give --buf PATH, or `npm install @bufbuild/buf`")
    return buf


def check(buf: str, protos: Path) -> int:
    """buf breaking of the protos (a directory with buf.yaml and protos/) against the newest release."""
    against = newest_release()
    done = subprocess.run([buf, "breaking", "--against", str(against)], cwd=protos, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stdout + done.stderr, end="", file=sys.stderr)
        print(f"protos: breaking changes against release {against.stem} (deprecate, do not delete)", file=sys.stderr)
        return 1
    print(f"protos: no breaking change against release {against.stem}")
    return 0


def write(buf: str) -> int:
    """Record today's protos as the release of pyproject.toml's version."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    out = RELEASED / f"{version}.txtpb"
    if out.exists():
        sys.exit(f"{out.relative_to(ROOT)} exists: release {version}'s contract is written once")
    RELEASED.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:  # written whole or not at all
        image = Path(tmp) / out.name
        subprocess.run([buf, "build", "--exclude-source-info", "-o", str(image)], cwd=ROOT, check=True)
        shutil.move(image, out)
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("check", "write"))
    parser.add_argument("--buf", help="the buf binary (default: on PATH, else tests/contract/node's)")
    parser.add_argument("--protos", type=Path, default=ROOT, help="check: the directory holding buf.yaml")
    args = parser.parse_args()
    buf = find_buf(args.buf)
    sys.exit(check(buf, args.protos) if args.action == "check" else write(buf))


if __name__ == "__main__":
    main()
