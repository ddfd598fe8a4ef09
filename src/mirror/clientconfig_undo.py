"""`dfdaemon client-config --undo`: take back what `--write DIR` wrote, and nothing the operator wrote.

- containerd: each DIR/NAME/hosts.toml whose first line is client-config's header is removed (NAME's directory too
  when that leaves it empty); a hosts.toml without the header is someone else's and stays.
- podman: DIR/registries.conf is removed when it carries the header.
- docker: the mirror's entries leave daemon.json's registry-mirrors and insecure-registries (a list left empty is
  dropped); every other key stays. The file itself stays, even when that leaves it `{}`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from dfcommon.errors import InvalidArgument
from mirror.clientconfig import HEADER

MARKER = "# " + HEADER.split("{", 1)[0]  # the header's fixed part: "# Written by `dfdaemon client-config`: ..."


def written_by_us(path: Path) -> bool:
    """True when path is a file whose first line is client-config's header."""
    try:
        with path.open(encoding="utf-8", errors="replace") as file:
            return file.readline().startswith(MARKER)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return False


def undo_containerd(root: Path, names: Sequence[str]) -> list[Path]:
    """Remove the hosts.toml files client-config wrote under root (only those of names, when given)."""
    candidates = [root / name / "hosts.toml" for name in names] if names else sorted(root.glob("*/hosts.toml"))
    removed = []
    for path in candidates:
        if written_by_us(path):
            path.unlink()
            removed.append(path)
            if not any(path.parent.iterdir()):
                path.parent.rmdir()
    return removed


def undo_podman(root: Path) -> list[Path]:
    """Remove root/registries.conf when client-config wrote it."""
    path = root / "registries.conf"
    if not written_by_us(path):
        return []
    path.unlink()
    return [path]


def docker_without(mirror: str, config: dict[str, object]) -> dict[str, object]:
    """daemon.json's settings without the mirror's registry-mirrors and insecure-registries entries."""
    url = f"http://{mirror}"
    kept = dict(config)
    for key, unwanted in (("registry-mirrors", url), ("insecure-registries", mirror)):
        value = kept.get(key)
        if not isinstance(value, list):
            continue
        rest = [item for item in value if str(item).rstrip("/") != unwanted]
        if rest:
            kept[key] = rest
        else:
            del kept[key]
    return kept


def undo_docker(root: Path, mirror: str) -> list[Path]:
    """Take the mirror out of root/daemon.json; returns the file when it changed."""
    path = root / "daemon.json"
    if not path.exists():
        return []
    try:
        loaded = json.loads(path.read_text())
    except ValueError as exc:
        raise InvalidArgument(f"cannot undo in {path}: {exc}") from None
    if not isinstance(loaded, dict):
        raise InvalidArgument(f"cannot undo in {path}: not a JSON object")
    kept = docker_without(mirror, loaded)
    if kept == loaded:
        return []
    path.write_text(json.dumps(kept, indent=2) + "\n")
    return [path]
