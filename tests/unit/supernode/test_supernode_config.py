"""Flags to config: defaults, listen addresses, sizes, validation errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfcommon.errors import InvalidArgument
from supernode.config import SupernodeConfig
from supernode.flags import build_parser, from_args, parse_listen


def config(*args: str) -> SupernodeConfig:
    return from_args(build_parser().parse_args(["--data-dir", "d", *args]))


def test_defaults() -> None:
    c = config()
    assert (c.listen_host, c.listen_port) == ("0.0.0.0", 8002)
    assert c.piece_size == 0  # by the fleet's size
    assert config("--piece-size", "4MiB").piece_size == 4 << 20
    assert c.piece_digest == "blake3"
    assert config("--piece-digest", "sha256").piece_digest == "sha256"
    assert (c.origin_fetch, c.seed_copy_delay) == ("auto", 5.0)
    assert config("--origin-fetch", "seed", "--seed-copy-delay", "0").origin_fetch == "seed"
    assert config("--origin-fetch", "peer").origin_fetch == "peer"
    assert (c.parent_policy, config("--parent-policy", "nearest").parent_policy) == ("default", "nearest")
    assert (c.location, config("--location", "eu|eu-1a|r7").location) == ("", "eu|eu-1a|r7")
    assert c.seed_cn == frozenset({"dandelion-seed"})
    assert config("--seed-cn", "a, b").seed_cn == frozenset({"a", "b"})
    assert c.data_dir == Path("d")
    assert c.log_level == "info"
    assert (c.grant_ttl, c.require_grants) == (600.0, True)
    assert (config("--grant-ttl", "90s").grant_ttl, config("--no-require-grants").require_grants) == (90.0, False)
    assert (c.access_check, config("--no-access-check").access_check) == (True, False)


def test_limits_default_and_flags() -> None:
    c = config()
    assert (c.max_tasks, c.max_peers_per_task, c.max_hosts) == (100_000, 10_000, 10_000)
    c = config("--max-tasks", "5", "--max-peers-per-task", "3", "--max-hosts", "2")
    assert (c.max_tasks, c.max_peers_per_task, c.max_hosts) == (5, 3, 2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:0", ("127.0.0.1", 0)), ("0.0.0.0:8002", ("0.0.0.0", 8002)), ("[::1]:9", ("::1", 9))],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--listen", "127.0.0.1"], "HOST:PORT"),
        (["--listen", "127.0.0.1:70000"], "port"),
        (["--piece-size", "1KiB"], "piece size"),
        (["--piece-size", "128MiB"], "piece size"),
        (["--piece-size", "0"], "piece size"),
        (["--piece-size", "big"], "invalid size"),
        (["--advertise-ip", "host.example"], "invalid IP"),
        (["--heartbeat-interval", "x"], "invalid number"),
        (["--heartbeat-interval", "10"], "heartbeat"),
        (["--seed-upload-slots", "0"], "upload slots"),
        (["--piece-digest", "md5"], "piece digest must be one of blake3, sha256"),
        (["--origin-fetch", "client"], "origin fetch must be one of auto, peer, seed"),
        (["--parent-policy", "closest"], "parent policy must be one of default, nearest, got 'closest'"),
        (["--location", "r|" + "z" * 300], "--location must be at most 256 characters, got 302"),
        (["--location", "r|z\n"], "--location must be printable text like region|zone|rack"),
        (["--seed-copy-delay", "-1"], "seed copy delay"),
        (["--seed-copy-delay", "nan"], "seed copy delay"),
        (["--seed-copy-delay", "soon"], "invalid number"),
        (["--grant-ttl", "0.5s"], "grant ttl must be between 1s and 1d"),
        (["--grant-ttl", "2d"], "grant ttl must be between 1s and 1d"),
        (["--grant-ttl", "soon"], "invalid duration"),
        (["--max-tasks", "0"], "--max-tasks must be between 1 and 10000000, got 0"),
        (["--max-tasks", "many"], "invalid number"),
        (["--max-peers-per-task", "-3"], "--max-peers-per-task must be between 1 and 10000000, got -3"),
        (["--max-hosts", "20000000"], "--max-hosts must be between 1 and 10000000, got 20000000"),
    ],
)
def test_invalid_values(args: list[str], fragment: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        config(*args)
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("listen_host", "advertise", "expected"),
    [("127.0.0.5", "", "127.0.0.5"), ("0.0.0.0", "127.0.0.9", "127.0.0.9"), ("127.0.0.5", "127.0.0.6", "127.0.0.6")],
)
def test_advertise_ip(listen_host: str, advertise: str, expected: str) -> None:
    c = SupernodeConfig(Path("d"), listen_host=listen_host, advertise_ip=advertise)
    assert c.resolved_advertise_ip() == expected
