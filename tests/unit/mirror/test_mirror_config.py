"""Mirror flags and configuration validation."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from fixtures.certs import identity, make_certs

from dfcommon.configfile import parse_args_with_config
from dfcommon.errors import InvalidArgument
from dfdaemon.flags import build_parser
from mirror.config import MirrorConfig, add_mirror_arguments, mirror_config_from_args


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_mirror_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults() -> None:
    config = mirror_config_from_args(parse())
    assert config == MirrorConfig()
    assert config is not None
    assert (config.listen, config.registry, config.registry_ca, config.insecure) == (
        "127.0.0.1:65001",
        "https://registry-1.docker.io",
        None,
        False,
    )
    assert config.hostport() == ("127.0.0.1", 65001)


@pytest.mark.parametrize("value", ["off", "OFF", " off "])
def test_off_disables(value: str) -> None:
    assert mirror_config_from_args(parse("--mirror", value)) is None


def test_all_flags(tmp_path: Path) -> None:
    make_certs(tmp_path, "reg=127.0.0.1")  # the CA bundle is loaded at start-up: it must hold a certificate
    ca = identity(tmp_path, "reg").ca
    config = mirror_config_from_args(
        parse(
            "--mirror", "127.0.0.5:7000", "--registry", "http://127.0.0.1:5000/", "--registry-ca", str(ca), "--insecure"
        )
    )
    assert config == MirrorConfig(
        listen="127.0.0.5:7000", registry="http://127.0.0.1:5000", registry_ca=str(ca), insecure=True
    )


def test_layer_flags() -> None:
    config = mirror_config_from_args(parse("--no-prefetch", "--layers-at-once"))
    assert config is not None
    assert (config.prefetch_layers, config.ordered_layers) == (False, False)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--mirror", "nowhere"), "invalid address"),
        (("--mirror", "127.0.0.1:0"), "invalid address"),
        (("--registry", "ftp://x"), "invalid registry URL"),
        (("--registry", "registry-1.docker.io"), "invalid registry URL"),
        (("--registry", "https://u:p@reg"), "must not carry credentials"),
        (("--registry", "https://reg/v2/"), "no path"),
        (("--registry", "https://reg:99999"), "invalid port"),
        (("--registry-ca", "/nonexistent/ca.pem"), "not a readable file"),
    ],
)
def test_bad_flags_are_one_line_errors(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message) as info:
        mirror_config_from_args(parse(*argv))
    assert "\n" not in str(info.value)


def test_nonpositive_timeouts_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="read_timeout_s must be positive"):
        MirrorConfig(read_timeout_s=0).validate()


def test_allowed_registries_default_to_none_beyond_the_registry() -> None:
    config = mirror_config_from_args(parse())
    assert config is not None and config.allowed_registries == ()


def test_allow_registry_is_repeatable_and_takes_comma_lists() -> None:
    config = mirror_config_from_args(
        parse("--allow-registry", "127.0.0.1:5001, ghcr.io", "--allow-registry", "https://reg.example:8443,")
    )
    assert config is not None
    assert config.allowed_registries == ("127.0.0.1:5001", "ghcr.io", "https://reg.example:8443")


@pytest.mark.parametrize(
    ("entry", "message"),
    [("a/b", "--allow-registry 'a/b'"), ("http://u:p@reg", "must not carry credentials"), ("h:0x50", "invalid port")],
)
def test_bad_allow_registry_is_a_one_line_error(entry: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message) as info:
        mirror_config_from_args(parse("--allow-registry", entry))
    assert "\n" not in str(info.value)


DAEMON_ARGS = ("--supernode", "127.0.0.1:8002", "--listen", "127.0.0.2", "--data-dir", "/tmp/unused")


def daemon_config(tmp_path: Path, argv: tuple[str, ...], env: dict[str, str], file_text: str = "") -> MirrorConfig:
    """The mirror configuration the dfdaemon command line builds from flags, environment and a config file."""
    if file_text:
        (tmp_path / "dfdaemon.yaml").write_text(file_text)
        env = {**env, "DFDAEMON_CONFIG": str(tmp_path / "dfdaemon.yaml")}
    ns = parse_args_with_config(build_parser(), [*DAEMON_ARGS, *argv], "DFDAEMON_", environ=env)
    config = mirror_config_from_args(ns)
    assert config is not None
    return config


def test_allow_registry_from_file_environment_and_flags(tmp_path: Path) -> None:
    from_file = daemon_config(tmp_path, (), {}, "allow-registry: [127.0.0.1:5001, 'ghcr.io,quay.io']\n")
    assert from_file.allowed_registries == ("127.0.0.1:5001", "ghcr.io", "quay.io")
    from_env = daemon_config(tmp_path, (), {"DFDAEMON_ALLOW_REGISTRY": "any"}, "allow-registry: [ghcr.io]\n")
    assert from_env.allowed_registries == ("any",)
    env = {"DFDAEMON_ALLOW_REGISTRY": "any"}
    from_flags = daemon_config(tmp_path, ("--allow-registry", "ghcr.io", "--allow-registry", "quay.io"), env)
    assert from_flags.allowed_registries == ("ghcr.io", "quay.io")  # flags replace, never add to, the environment
