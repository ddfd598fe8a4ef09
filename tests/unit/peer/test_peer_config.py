"""Flag parsing and defaults shared by dfdaemon and dfget."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfcommon.errors import InvalidArgument
from dfdaemon import flags as daemon
from peer import dfget
from peer.config import PeerConfig, parse_duration, parse_supernodes
from peer.paths import default_daemon_endpoint, endpoint_socket_path


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("6h", 21600), ("2d", 172800)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "abc", "-5s", "1x"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_duration(text)


def test_parse_supernodes() -> None:
    assert parse_supernodes("a:1, b:2,") == ["a:1", "b:2"]
    with pytest.raises(InvalidArgument):
        parse_supernodes("a:1,b")


def test_default_endpoint_is_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = default_daemon_endpoint()
    assert endpoint.startswith("unix:") and endpoint.endswith("dfdaemon.sock")
    assert daemon.build_parser().parse_args(["--supernode", "a:1", "--listen", "127.0.0.1", "--data-dir", "d"])
    assert endpoint_socket_path(endpoint) == Path(endpoint[5:])
    assert endpoint_socket_path("127.0.0.1:5") is None


def test_daemon_flags_to_config() -> None:
    ns = daemon.build_parser().parse_args(
        [
            "--supernode",
            "127.0.0.1:8002,127.0.0.2:8002",
            "--listen",
            "127.0.0.3",
            "--data-dir",
            "/tmp/x",
            "--upload-limit",
            "50M",
            "--cache-quota",
            "1GiB",
            "--cache-ttl",
            "30m",
            "--mirror",
            "off",
        ]
    )
    config = daemon.config_from_args(ns)
    assert config.supernodes == ["127.0.0.1:8002", "127.0.0.2:8002"]
    assert config.upload_limit == 50_000_000 and config.cache_quota == 1 << 30 and config.cache_ttl == 1800
    assert config.daemon_listen == default_daemon_endpoint() and config.daemon_listen_is_default
    assert config.require_grants  # PeerService serves only callers with an access grant unless told otherwise
    ns.no_require_grants = True
    assert not daemon.config_from_args(ns).require_grants


@pytest.mark.parametrize(
    "change", [{"listen_ip": "nope"}, {"upload_slots": 0}, {"window": 0}, {"daemon_listen": "host-without-port"}]
)
def test_config_validation(change: dict[str, object]) -> None:
    config = PeerConfig(supernodes=[], listen_ip="127.0.0.1", data_dir=Path("d"))
    for key, value in change.items():
        setattr(config, key, value)
    with pytest.raises(InvalidArgument):
        config.validate()


def test_dfget_headers_are_parsed_not_echoed() -> None:
    assert dfget.parse_headers(["Authorization: Bearer s3cret", "X-A:b"]) == {
        "Authorization": "Bearer s3cret",
        "X-A": "b",
    }
    with pytest.raises(InvalidArgument) as info:
        dfget.parse_headers(["X: y", "Authorization Bearer s3cret"])
    assert "s3cret" not in str(info.value) and "number 2" in str(info.value)


def test_default_upload_limit_protects_the_host_not_the_link() -> None:
    ns = daemon.build_parser().parse_args(["--supernode", "127.0.0.1:8002", "--listen", "127.0.0.1", "--data-dir", "d"])
    config = daemon.config_from_args(ns)
    assert (
        config.upload_limit
        == 1 << 30
        == PeerConfig(supernodes=[], listen_ip="127.0.0.1", data_dir=Path("d")).upload_limit
    )
