"""Which address a wildcard listener advertises: injected routes and interfaces, no traffic."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from dfcommon.advertise import (
    DEFAULT_ROUTE_PROBE,
    RouteResolver,
    choose_advertise_ip,
    interface_addresses,
    route_source,
)
from dfcommon.errors import InvalidArgument
from dfdaemon import flags as daemon
from supernode.config import SupernodeConfig


def routes(table: dict[str, str | None]) -> tuple[list[str], RouteResolver]:
    asked: list[str] = []

    def route(target: str) -> str | None:
        asked.append(target)
        return table.get(target)

    return asked, route


def test_explicit_and_specific_listen_win_without_probing() -> None:
    def fail(_: str) -> str | None:
        raise AssertionError("probed")

    assert choose_advertise_ip("0.0.0.0", "10.1.1.1", ["sn:8002"], route=fail, interfaces=list) == "10.1.1.1"
    assert choose_advertise_ip("127.0.0.5", "", ["sn:8002"], route=fail, interfaces=list) == "127.0.0.5"


def test_route_to_first_supernode_first() -> None:
    asked, route = routes({"sn1:8002": "10.0.0.7", DEFAULT_ROUTE_PROBE: "192.168.1.4"})
    ip = choose_advertise_ip("0.0.0.0", "", ["sn1:8002", "sn2:8002"], route=route, interfaces=list)
    assert ip == "10.0.0.7" and asked == ["sn1:8002"]


def test_loopback_route_falls_to_default_route() -> None:
    asked, route = routes({"127.0.0.1:8002": "127.0.0.1", DEFAULT_ROUTE_PROBE: "192.168.1.4"})
    ip = choose_advertise_ip("0.0.0.0", "", ["127.0.0.1:8002"], route=route, interfaces=list)
    assert ip == "192.168.1.4" and asked == ["127.0.0.1:8002", DEFAULT_ROUTE_PROBE]


def test_single_interface_when_no_route() -> None:
    _, route = routes({})
    ip = choose_advertise_ip("0.0.0.0", "", (), route=route, interfaces=lambda: ["127.0.0.1", "10.9.9.9"])
    assert ip == "10.9.9.9"


@pytest.mark.parametrize(
    ("addresses", "fragment"),
    [(["127.0.0.1", "127.0.1.1"], "only loopback addresses"), (["10.0.0.1", "10.0.0.2"], "10.0.0.1, 10.0.0.2")],
)
def test_refuses_loopback_or_ambiguous(addresses: list[str], fragment: str) -> None:
    _, route = routes({DEFAULT_ROUTE_PROBE: "127.0.0.1"})
    with pytest.raises(InvalidArgument) as caught:
        choose_advertise_ip("0.0.0.0", "", (), route=route, interfaces=lambda: addresses)
    message = str(caught.value)
    assert fragment in message and "--advertise-ip" in message and "\n" not in message


def test_supernode_config_uses_the_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    import dfcommon.advertise as advertise

    monkeypatch.setattr(advertise, "route_source", lambda target: "127.0.0.1")
    monkeypatch.setattr(advertise, "interface_addresses", lambda: ["127.0.0.1"])
    with pytest.raises(InvalidArgument, match="--advertise-ip"):
        SupernodeConfig(Path("d")).resolved_advertise_ip()


def test_dfdaemon_on_wildcard_advertises_its_route() -> None:
    ns = daemon.build_parser().parse_args(["--supernode", "127.0.0.1:8002", "--listen", "127.0.0.3", "--data-dir", "d"])
    assert daemon.config_from_args(ns).advertise_ip == "127.0.0.3"
    ns = daemon.build_parser().parse_args(
        ["--supernode", "127.0.0.1:8002", "--listen", "0.0.0.0", "--advertise-ip", "10.2.3.4", "--data-dir", "d"]
    )
    config = daemon.config_from_args(ns)
    assert (config.listen_ip, config.advertise_ip) == ("0.0.0.0", "10.2.3.4")


def test_real_probes_stay_local() -> None:
    # A connected UDP socket to a loopback address: the kernel answers with the loopback source, no packet sent.
    assert route_source("127.0.0.1:9") == "127.0.0.1"
    assert route_source("not-an-address") is None
    assert "127.0.0.1" in interface_addresses()
    for ip in interface_addresses():
        ipaddress.ip_address(ip)
