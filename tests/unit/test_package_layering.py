"""Which package may import which: the peer knows nothing of the mirror, the registry client nothing of either.

The dfdaemon's composition root (src/dfdaemon) is the one place that puts the peer and the mirror together; preheat and
the mirror share src/registryclient. Read from the source's syntax tree, so imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

# package → top-level packages of this repository it must never import
FORBIDDEN = {
    "peer": {"mirror", "dfdaemon"},
    "registryclient": {"mirror", "peer", "dfdaemon", "supernode", "starlette"},
    "mirror": {"peer", "dfdaemon", "supernode"},
}


def imported_modules(path: Path) -> set[str]:
    """Every module an `import`, `from ... import` or importlib.import_module("...") in path names (absolute)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            found.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


def package_imports(package: str) -> dict[str, set[str]]:
    """Module path (relative to src) → the top-level packages it imports, for every module of package."""
    files = sorted((SRC / package).rglob("*.py"))
    assert files, f"no modules under src/{package}"
    return {str(path.relative_to(SRC)): {name.split(".")[0] for name in imported_modules(path)} for path in files}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_nothing_forbidden(package: str) -> None:
    offenders = {
        module: sorted(tops & FORBIDDEN[package])
        for module, tops in package_imports(package).items()
        if tops & FORBIDDEN[package]
    }
    assert offenders == {}, f"src/{package} imports what it must not: {offenders}"


def test_the_walk_sees_imports_at_any_depth(tmp_path: Path) -> None:
    """The check above is only as good as the walk: top-level, nested and importlib imports are all found."""
    module = tmp_path / "sample.py"
    module.write_text(
        "import os.path\n"
        "from mirror.config import MirrorConfig\n"
        "from . import sibling\n"
        "def f():\n"
        "    from mirror.server import serve_mirror\n"
        "    import importlib\n"
        "    return importlib.import_module('mirror.clientconfig_cli')\n"
    )
    assert imported_modules(module) == {
        "os.path",
        "mirror.config",
        "mirror.server",
        "importlib",
        "mirror.clientconfig_cli",
    }


def test_preheat_and_the_mirror_share_the_registry_client() -> None:
    peer = package_imports("peer")
    mirror = package_imports("mirror")
    assert "registryclient" in peer["peer/preheat.py"]
    assert "registryclient" in mirror["mirror/app.py"]
    root = set().union(*package_imports("dfdaemon").values())
    assert {"peer", "mirror"} <= root  # the composition root is where the two meet
