"""Regenerate generated/ from protos/ (the only writer of generated/).

Usage: python scripts/generate_protos.py [--check]

--check regenerates into a temporary folder and exits 1 when generated/ differs.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GENERATED = ROOT / "generated"


def generate(out: Path) -> None:
    """Run protoc over every .proto under protos/ into out/ and add package markers."""
    protos = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    include = str(Path(protoc.__file__).parent / "_proto")
    plugin = shutil.which("protoc-gen-mypy_grpc")
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
    ]
    if plugin is None:
        sys.exit("protoc-gen-mypy_grpc not found: pip install mypy-protobuf")
    args += [f"--plugin=protoc-gen-mypy_grpc={plugin}", f"--mypy_grpc_out={out}"]
    if protoc.main([*args, *protos]) != 0:
        sys.exit("protoc failed")
    for folder in [out, *(p for p in out.rglob("*") if p.is_dir())]:
        if folder != out:
            (folder / "__init__.py").touch()


def differences(a: Path, b: Path) -> list[str]:
    """Relative paths that differ between two trees (bytecode caches left by imports are not protoc's output)."""
    names = {p.relative_to(a) for p in a.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    names |= {p.relative_to(b) for p in b.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    return sorted(
        str(n)
        for n in names
        if not ((a / n).is_file() and (b / n).is_file() and filecmp.cmp(a / n, b / n, shallow=False))
    )


def main() -> None:
    """Regenerate, or with --check compare against a fresh generation."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if generated/ is stale")
    check = parser.parse_args().check
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "generated"
        fresh.mkdir()
        generate(fresh)
        if check:
            stale = differences(fresh, GENERATED)
            if stale:
                sys.exit("generated/ is stale; run python scripts/generate_protos.py: " + ", ".join(stale))
            return
        shutil.rmtree(GENERATED, ignore_errors=True)
        shutil.copytree(fresh, GENERATED)


if __name__ == "__main__":
    main()
