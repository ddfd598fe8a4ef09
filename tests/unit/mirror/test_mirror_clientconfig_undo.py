"""`dfdaemon client-config --undo`: what --write wrote goes, what the operator wrote stays."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mirror.clientconfig_cli import main, run

ENV = {"DFDAEMON_REGISTRY_MAP": "ghcr.io=https://harbor.internal"}


def cli(*argv: str, env: dict[str, str] | None = None) -> None:
    assert run(list(argv), ENV if env is None else env) == 0


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_containerd_undo_removes_its_hosts_toml_and_keeps_the_operators(tmp_path: Path) -> None:
    root = tmp_path / "certs.d"
    (root / "quay.io").mkdir(parents=True)
    (root / "quay.io" / "hosts.toml").write_text('server = "https://quay.io"\n')  # the operator's own
    (root / "docker.io").mkdir()
    (root / "docker.io" / "ca.crt").write_text("operator's CA\n")  # beside the file client-config writes
    before = tree(root)
    cli("--runtime", "containerd", "--write", str(root))
    assert sorted(p.parent.name for p in root.glob("*/hosts.toml")) == ["docker.io", "ghcr.io", "quay.io"]
    assert tomllib.loads((root / "ghcr.io" / "hosts.toml").read_text())["server"] == "https://ghcr.io"

    cli("--runtime", "containerd", "--undo", "--write", str(root))
    assert tree(root) == before
    assert not (root / "ghcr.io").exists()  # its directory went with it
    assert (root / "docker.io").is_dir()  # not empty: the operator's CA is there


def test_containerd_undo_of_named_registries_only(tmp_path: Path) -> None:
    root = tmp_path / "certs.d"
    cli("--runtime", "containerd", "--write", str(root), "docker.io", "quay.io", "127.0.0.1:5000")
    cli("--runtime", "containerd", "--undo", "--write", str(root), "quay.io", "127.0.0.1:5000")
    assert [p.parent.name for p in root.glob("*/hosts.toml")] == ["docker.io"]


def test_docker_undo_restores_daemon_json(tmp_path: Path) -> None:
    original = {"log-level": "warn", "registry-mirrors": ["https://m.example"], "insecure-registries": ["r:5000"]}
    (tmp_path / "daemon.json").write_text(json.dumps(original))
    cli("--runtime", "docker", "--mirror", "10.0.0.7:65001", "--write", str(tmp_path))
    written = json.loads((tmp_path / "daemon.json").read_text())
    assert written["registry-mirrors"][0] == "http://10.0.0.7:65001"
    assert written["insecure-registries"] == ["r:5000", "10.0.0.7:65001"]

    cli("--runtime", "docker", "--mirror", "10.0.0.7:65001", "--undo", "--write", str(tmp_path))
    assert json.loads((tmp_path / "daemon.json").read_text()) == original


def test_docker_undo_drops_lists_it_emptied(tmp_path: Path) -> None:
    cli("--runtime", "docker", "--write", str(tmp_path))  # no daemon.json before: only the mirror in it
    assert json.loads((tmp_path / "daemon.json").read_text()) == {"registry-mirrors": ["http://127.0.0.1:65001"]}
    cli("--runtime", "docker", "--undo", "--write", str(tmp_path))
    assert json.loads((tmp_path / "daemon.json").read_text()) == {}


def test_podman_undo_removes_only_its_own_registries_conf(tmp_path: Path) -> None:
    cli("--runtime", "podman", "--write", str(tmp_path))
    cli("--runtime", "podman", "--undo", "--write", str(tmp_path))
    assert not (tmp_path / "registries.conf").exists()
    (tmp_path / "registries.conf").write_text('unqualified-search-registries = ["docker.io"]\n')
    cli("--runtime", "podman", "--undo", "--write", str(tmp_path))
    assert (tmp_path / "registries.conf").read_text() == 'unqualified-search-registries = ["docker.io"]\n'


def test_undo_needs_the_directory(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--runtime", "containerd", "--undo"]) == 2
    err = capsys.readouterr().err
    assert err == "dfdaemon client-config: --undo needs --write DIR: the directory client-config wrote to\n"


def test_the_dfdaemon_command_writes_and_undoes(tmp_path: Path) -> None:
    """The way the Kubernetes manifests run it: `dfdaemon client-config ...` in a process of its own."""
    root = tmp_path / "certs.d"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "DFDAEMON_MIRROR": "127.0.0.1:65001"}
    command = [sys.executable, "-c", "from dfdaemon.main import main; main()", "client-config"]
    write = [*command, "--runtime", "containerd", "--write", str(root)]
    done = subprocess.run(write, env=env, capture_output=True, text=True, timeout=60, check=True)
    assert f"wrote {root / 'docker.io' / 'hosts.toml'}" in done.stderr
    assert '[host."http://127.0.0.1:65001"]' in (root / "docker.io" / "hosts.toml").read_text()
    undone = subprocess.run([*write, "--undo"], env=env, capture_output=True, text=True, timeout=60, check=True)
    assert f"removed {root / 'docker.io' / 'hosts.toml'}" in undone.stderr
    assert list(root.iterdir()) == []
