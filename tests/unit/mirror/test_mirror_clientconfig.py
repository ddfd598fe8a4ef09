"""`dfdaemon client-config`: what it writes for docker, containerd and podman, read back as those clients parse it."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from mirror.clientconfig_cli import run

NODE = "mirror: 127.0.0.1:65002\nregistry-map:\n  docker.io: https://hub-proxy.internal:5000\n  ghcr.io: https://harbor.internal\n"


def cli(*argv: str, env: dict[str, str] | None = None) -> None:
    assert run(list(argv), env or {}) == 0


def test_containerd_gets_one_hosts_toml_per_name_with_the_mirror_first(tmp_path: Path) -> None:
    (tmp_path / "dfdaemon.yaml").write_text(NODE)
    out = tmp_path / "certs.d"
    cli("--runtime", "containerd", "--config", str(tmp_path / "dfdaemon.yaml"), "--write", str(out))
    assert sorted(p.parent.name for p in out.glob("*/hosts.toml")) == ["docker.io", "ghcr.io"]
    hub = tomllib.loads((out / "docker.io" / "hosts.toml").read_text())
    assert hub == {
        "server": "https://registry-1.docker.io",
        "host": {"http://127.0.0.1:65002": {"capabilities": ["pull", "resolve"]}},
    }
    assert tomllib.loads((out / "ghcr.io" / "hosts.toml").read_text())["server"] == "https://ghcr.io"


def test_podman_mirrors_the_default_registry_plainly(tmp_path: Path) -> None:
    env = {"DFDAEMON_REGISTRY": "http://127.0.0.1:5000"}
    cli("--runtime", "podman", "--write", str(tmp_path), env=env)
    conf = tomllib.loads((tmp_path / "registries.conf").read_text())
    by_prefix = {r["prefix"]: r for r in conf["registry"]}
    assert sorted(by_prefix) == ["127.0.0.1:5000", "docker.io"]
    assert by_prefix["127.0.0.1:5000"]["mirror"] == [{"location": "127.0.0.1:65001", "insecure": True}]
    assert by_prefix["127.0.0.1:5000"]["insecure"] is True  # the registry itself speaks HTTP on loopback
    assert by_prefix["docker.io"]["mirror"] == [{"location": "127.0.0.1:65001/docker.io", "insecure": True}]


def test_names_on_the_command_line_and_loopback_registries(tmp_path: Path) -> None:
    out = tmp_path / "certs.d"
    cli("--runtime", "containerd", "--mirror", "127.0.0.1:7000", "--write", str(out), "127.0.0.1:5000")
    hosts = tomllib.loads((out / "127.0.0.1:5000" / "hosts.toml").read_text())
    assert hosts["server"] == "http://127.0.0.1:5000" and list(hosts["host"]) == ["http://127.0.0.1:7000"]
    assert [p.parent.name for p in out.glob("*/hosts.toml")] == ["127.0.0.1:5000"]


def test_podman_mirrors_mapped_names_by_path_and_the_default_plainly(tmp_path: Path) -> None:
    env = {"DFDAEMON_REGISTRY_MAP": "docker.io=https://hub-proxy.internal:5000,ghcr.io=https://harbor.internal"}
    cli("--runtime", "podman", "--write", str(tmp_path), env=env)
    conf = tomllib.loads((tmp_path / "registries.conf").read_text())
    assert conf["unqualified-search-registries"] == ["docker.io"]
    by_prefix = {r["prefix"]: r for r in conf["registry"]}
    # A mapped name travels in the path even for docker.io: right whatever the node's --registry is.
    assert by_prefix["docker.io"]["mirror"] == [{"location": "127.0.0.1:65001/docker.io", "insecure": True}]
    assert by_prefix["ghcr.io"]["mirror"] == [{"location": "127.0.0.1:65001/ghcr.io", "insecure": True}]
    assert by_prefix["ghcr.io"]["location"] == "ghcr.io" and "insecure" not in by_prefix["ghcr.io"]


def test_docker_merges_into_an_existing_daemon_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "daemon.json").write_text(json.dumps({"log-level": "warn", "registry-mirrors": ["https://m.example"]}))
    (tmp_path / "dfdaemon.yaml").write_text(NODE)
    config = ["--config", str(tmp_path / "dfdaemon.yaml")]
    cli("--runtime", "docker", *config, "--write", str(tmp_path))
    cli("--runtime", "docker", *config, "--write", str(tmp_path))  # twice: still one entry
    written = json.loads((tmp_path / "daemon.json").read_text())
    assert written == {"log-level": "warn", "registry-mirrors": ["http://127.0.0.1:65002", "https://m.example"]}
    assert "pull ghcr.io images as 127.0.0.1:65002/ghcr.io/REPO:TAG" in capsys.readouterr().err


def test_a_mirror_beyond_loopback_is_an_insecure_registry_for_docker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli("--runtime", "docker", "--mirror", "10.0.0.7:65001")
    printed = json.loads(capsys.readouterr().out)
    assert printed == {"registry-mirrors": ["http://10.0.0.7:65001"], "insecure-registries": ["10.0.0.7:65001"]}


def test_docker_is_told_where_hub_names_go_when_the_default_is_not_hub(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"DFDAEMON_REGISTRY": "http://127.0.0.1:5000", "DFDAEMON_REGISTRY_MAP": "docker.io=https://hub.internal"}
    cli("--runtime", "docker", env=env)
    err = capsys.readouterr().err
    assert "docker sends Docker Hub names to the dfdaemon's default upstream http://127.0.0.1:5000" in err
    assert "not to docker.io's https://hub.internal" in err


def test_a_mirror_on_every_address_is_reached_at_loopback(capsys: pytest.CaptureFixture[str]) -> None:
    cli("--runtime", "containerd", env={"DFDAEMON_MIRROR": "0.0.0.0:65001"})
    assert '[host."http://127.0.0.1:65001"]' in capsys.readouterr().out


def test_printed_containerd_files_are_labelled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli("--runtime", "containerd", "docker.io", "quay.io")
    out = capsys.readouterr().out
    assert "# ---- docker.io/hosts.toml" in out and "# ---- quay.io/hosts.toml" in out
    assert tomllib.loads(out.split("# ---- quay.io/hosts.toml")[1])["server"] == "https://quay.io"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--runtime", "docker", "--mirror", "off"], "the node's mirror is off"),
        (["--runtime", "docker", "--mirror", "nowhere"], "invalid address"),
        (["--runtime", "podman", "ghcr.io/org"], "invalid registry name"),
        (["--runtime", "podman", "--config", "/nonexistent.yaml"], "cannot read config file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from mirror.clientconfig_cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("dfdaemon client-config: ") and message in err and err.count("\n") == 1
