"""Config file and environment options: same names as the flags, flags > environment > file > defaults."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from dfcommon.configfile import parse_args_with_config
from dfcommon.errors import InvalidArgument


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="demo")
    p.add_argument("--listen", required=True)
    p.add_argument("--port", type=int, default=65000)
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--no-back-source", action="store_true")
    p.add_argument("--log-level", default="info", choices=["debug", "info"])
    p.add_argument("--header", action="append", default=[])
    return p


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("c.toml", 'listen = "10.0.0.1"\nport = 7000\ndata_dir = "/d"\nno-back-source = true\nheader = ["A: b"]\n'),
        ("c.yaml", "listen: 10.0.0.1\nport: 7000\ndata-dir: /d\nno_back_source: true\nheader: ['A: b']\n"),
    ],
)
def test_file_values_typed_like_flags(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / name).write_text(text)
    ns = parse_args_with_config(parser(), ["--config", str(tmp_path / name)], "DEMO_", environ={})
    assert (ns.listen, ns.port, ns.data_dir, ns.no_back_source, ns.header) == (
        "10.0.0.1",
        7000,
        Path("/d"),
        True,
        ["A: b"],
    )


def test_precedence_flag_over_env_over_file(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('listen = "1.1.1.1"\nport = 1\nlog-level = "debug"\n')
    env = {"DEMO_CONFIG": str(tmp_path / "c.toml"), "DEMO_PORT": "2", "DEMO_LISTEN": "2.2.2.2"}
    ns = parse_args_with_config(parser(), ["--listen", "3.3.3.3"], "DEMO_", environ=env)
    assert (ns.listen, ns.port, ns.log_level) == ("3.3.3.3", 2, "debug")


def test_required_flag_satisfied_by_environment() -> None:
    ns = parse_args_with_config(
        parser(), [], "DEMO_", environ={"DEMO_LISTEN": "127.0.0.2", "DEMO_NO_BACK_SOURCE": "yes"}
    )
    assert ns.listen == "127.0.0.2"
    assert ns.no_back_source is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('listen = "x"\nbogus = 1\n', "unknown option 'bogus'"),
        ('listen = "x"\nlog-level = "loud"\n', "log-level must be one of debug, info"),
        ('listen = "x"\nno-back-source = "maybe"\n', "no-back-source must be true or false"),
        ("listen = [\n", "is not valid toml"),
        ("listen = {a = 1}\n", "listen takes a single value"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "c.toml").write_text(text)
    with pytest.raises(InvalidArgument, match=message) as raised:
        parse_args_with_config(parser(), ["--config", str(tmp_path / "c.toml")], "DEMO_", environ={})
    assert "\n" not in str(raised.value)


def test_missing_config_file() -> None:
    with pytest.raises(InvalidArgument, match=r"cannot read config file /nonexistent\.toml"):
        parse_args_with_config(parser(), ["--config", "/nonexistent.toml", "--listen", "x"], "DEMO_", environ={})


def test_bad_typed_value_from_env_exits_like_a_bad_flag() -> None:
    with pytest.raises(SystemExit) as raised:
        parse_args_with_config(parser(), ["--listen", "x"], "DEMO_", environ={"DEMO_PORT": "http"})
    assert raised.value.code == 2
