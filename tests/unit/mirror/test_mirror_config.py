"""Mirror flags and configuration validation."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from dfcommon.errors import InvalidArgument
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
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    config = mirror_config_from_args(
        parse(
            "--mirror", "127.0.0.5:7000", "--registry", "http://127.0.0.1:5000/", "--registry-ca", str(ca), "--insecure"
        )
    )
    assert config == MirrorConfig("127.0.0.5:7000", "http://127.0.0.1:5000", str(ca), True)


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
