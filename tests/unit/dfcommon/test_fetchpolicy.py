"""The origin fetch policy: which addresses a fetch may connect to, and that a refusal comes before any connect."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from dfcommon.errors import InvalidArgument
from dfcommon.fetchpolicy import FetchPolicy, OriginRefused, connect_checked, parse_rule, parse_rules

GRPC, METRICS = 8002, 8003
# A supernode listening beyond loopback: gRPC on every address, metrics on one private address.
WIDE = FetchPolicy.build((), (), [("0.0.0.0", GRPC, "gRPC"), ("10.1.2.3", METRICS, "metrics")], "the supernode")
# A cluster on loopback only (quick start, tests).
LOCAL = FetchPolicy.build((), (), [("127.0.0.1", GRPC, "gRPC"), ("127.0.0.1", METRICS, "metrics")], "the supernode")


def wide(allow: tuple[str, ...] = (), deny: tuple[str, ...] = ()) -> FetchPolicy:
    return FetchPolicy.build(
        allow, deny, [("0.0.0.0", GRPC, "gRPC"), ("10.1.2.3", METRICS, "metrics")], "the supernode"
    )


# (policy, URL host, resolved address, port, None when allowed or a fragment of the refusal)
TABLE: list[tuple[str, FetchPolicy, str, str, int, str | None]] = [
    ("loopback, wide listener", WIDE, "127.0.0.1", "127.0.0.1", 80, "loopback address, and the supernode listens"),
    ("other loopback address", WIDE, "127.8.9.10", "127.8.9.10", 80, "loopback"),
    ("IPv6 loopback", WIDE, "::1", "::1", 80, "loopback"),
    ("0.0.0.0 reaches loopback", WIDE, "0.0.0.0", "0.0.0.0", 80, "loopback"),
    ("IPv4-mapped loopback", WIDE, "::ffff:127.0.0.1", "::ffff:127.0.0.1", 80, "loopback"),
    ("a name that resolves to loopback", WIDE, "localhost", "127.0.0.1", 5000, "origin localhost (127.0.0.1):5000"),
    ("loopback, loopback cluster", LOCAL, "127.0.0.1", "127.0.0.1", 5000, None),
    ("localhost, loopback cluster", LOCAL, "localhost", "127.0.0.1", 5000, None),
    ("metadata service", WIDE, "169.254.169.254", "169.254.169.254", 80, "link-local"),
    ("metadata service, loopback cluster", LOCAL, "169.254.169.254", "169.254.169.254", 80, "link-local"),
    ("metadata by name", LOCAL, "metadata.google.internal", "169.254.169.254", 80, "link-local"),
    ("IPv6 link-local with scope", LOCAL, "fe80::1", "fe80::1%lo", 80, "link-local"),
    ("IPv4-mapped link-local", LOCAL, "x", "::ffff:169.254.169.254", 80, "link-local"),
    ("own gRPC port, any local address", WIDE, "127.0.0.1", "127.0.0.1", GRPC, "the supernode's own gRPC address"),
    ("own metrics address", WIDE, "10.1.2.3", "10.1.2.3", METRICS, "own metrics address"),
    ("metrics port on another host", WIDE, "10.1.2.4", "10.1.2.4", METRICS, None),
    ("own port, loopback cluster", LOCAL, "127.0.0.1", "127.0.0.1", METRICS, "own metrics address"),
    ("own port via 0.0.0.0", LOCAL, "0.0.0.0", "0.0.0.0", GRPC, "own gRPC address"),
    ("other port, loopback cluster", LOCAL, "127.0.0.1", "127.0.0.1", GRPC + 10, None),
    ("private range allowed", WIDE, "registry.internal", "10.0.0.5", 5000, None),
    ("private 192.168", WIDE, "192.168.1.1", "192.168.1.1", 443, None),
    ("public address", WIDE, "example.com", "93.184.216.34", 443, None),
    ("allow loopback", wide(allow=("127.0.0.0/8",)), "127.0.0.1", "127.0.0.1", 5000, None),
    ("allow loopback: own port still refused", wide(allow=("127.0.0.0/8",)), "127.0.0.1", "127.0.0.1", GRPC, "own"),
    ("allow own port by IP:PORT", wide(allow=(f"127.0.0.1:{GRPC}",)), "127.0.0.1", "127.0.0.1", GRPC, None),
    ("allow own port by *:PORT", wide(allow=(f"*:{METRICS}",)), "10.1.2.3", "10.1.2.3", METRICS, None),
    ("allow a host name", wide(allow=("localhost",)), "localhost", "127.0.0.1", 5000, None),
    ("allowed name does not allow the address", wide(allow=("localhost",)), "127.0.0.1", "127.0.0.1", 5000, "loop"),
    ("allow link-local", wide(allow=("169.254.169.254",)), "169.254.169.254", "169.254.169.254", 80, None),
    ("allow IPv6 link-local", wide(allow=("fe80::/10",)), "fe80::1", "fe80::1", 80, None),
    ("deny a private range", wide(deny=("10.0.0.0/8",)), "r", "10.0.0.5", 5000, "denied by --origin-deny 10.0.0.0/8"),
    ("deny a port anywhere", wide(allow=("10.0.0.0/8",), deny=("*:9100",)), "n", "10.0.0.5", 9100, "*:9100"),
    ("port entry beats a range", wide(allow=("10.0.0.5:9100",), deny=("*:9100",)), "n", "10.0.0.5", 9100, None),
    ("longer prefix wins", wide(allow=("10.0.0.5",), deny=("10.0.0.0/8",)), "r", "10.0.0.5", 5000, None),
    ("name beats range", wide(allow=("reg.corp",), deny=("10.0.0.0/8",)), "reg.corp", "10.0.0.5", 443, None),
    ("wildcard name", wide(deny=("*.corp",)), "a.b.corp", "10.0.0.5", 443, "*.corp"),
    ("wildcard leaves the bare domain", wide(deny=("*.corp",)), "corp", "10.0.0.5", 443, None),
    ("deny wins a tie", wide(allow=("10.0.0.0/8",), deny=("10.0.0.0/8",)), "r", "10.0.0.5", 443, "denied"),
    ("name match ignores case and dot", wide(deny=("Reg.Corp",)), "REG.corp.", "10.0.0.5", 443, "denied"),
]


@pytest.mark.parametrize(
    ("policy", "host", "address", "port", "refused"), [t[1:] for t in TABLE], ids=[t[0] for t in TABLE]
)
def test_policy_table(policy: FetchPolicy, host: str, address: str, port: int, refused: str | None) -> None:
    if refused is None:
        policy.check(host, address, port)
        return
    with pytest.raises(OriginRefused) as caught:
        policy.check(host, address, port)
    assert refused in str(caught.value)
    assert "\n" not in str(caught.value)


def test_wide_and_local_listeners_decide_loopback() -> None:
    assert WIDE.refuse_loopback and not LOCAL.refuse_loopback
    assert FetchPolicy.build((), (), [("localhost", 1, "gRPC"), ("::1", 2, "metrics")], "x").refuse_loopback is False
    assert FetchPolicy.build((), (), [("127.0.0.1", 1, "gRPC"), ("::", 2, "metrics")], "x").refuse_loopback is True
    assert FetchPolicy().refuse_loopback is False  # the HTTP client's default: link-local only


@pytest.mark.parametrize(
    "entry",
    ["", "10.0.0.0/33", "*", "host:0", "host:65536", "a..b", "under score!", "[::1]x", "http://h", "::ffff:0:0/96"],
)
def test_bad_entries_are_one_line_errors(entry: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_rules([entry or ":"], "--origin-deny")
    assert "--origin-deny" in str(caught.value) and "\n" not in str(caught.value)


def test_entry_forms() -> None:
    assert parse_rule("[fe80::1]:8080").port == 8080
    assert parse_rule("fe80::").network is not None and parse_rule("fe80::").port is None
    assert parse_rule("*.Example.COM:443").host == ".example.com"
    assert [r.text for r in parse_rules(["10.0.0.0/8, reg.corp", " ", "*:9100"], "--origin-allow")] == [
        "10.0.0.0/8",
        "reg.corp",
        "*:9100",
    ]


class Recorder:
    """A resolver with fixed answers and an opener that records every address it is asked to connect to."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers
        self.opened: list[str] = []

    def resolve(self, host: str, port: int, *args: Any) -> list[tuple[Any, ...]]:
        family = {4: socket.AF_INET, 6: socket.AF_INET6}
        return [(family[6 if ":" in a else 4], socket.SOCK_STREAM, 6, "", (a, port)) for a in self.answers]

    def open(self, family: int, sockaddr: tuple[Any, ...], timeout: float) -> socket.socket:
        self.opened.append(str(sockaddr[0]))
        raise ConnectionRefusedError(111, "Connection refused")


@pytest.mark.parametrize(
    ("host", "answers"),
    [
        ("169.254.169.254", ["169.254.169.254"]),
        ("fe80::a9fe:a9fe", ["fe80::a9fe:a9fe"]),
        ("rebound.example", ["169.254.169.254", "fe80::1"]),  # a public name whose DNS now says metadata
    ],
)
def test_refused_addresses_are_never_connected_to(host: str, answers: list[str]) -> None:
    recorder = Recorder(answers)
    with pytest.raises(OriginRefused, match="link-local"):
        connect_checked(host, 80, 1.0, LOCAL, recorder.resolve, recorder.open)
    assert recorder.opened == []


def test_only_the_allowed_addresses_of_a_name_are_connected_to() -> None:
    recorder = Recorder(["127.0.0.1", "169.254.169.254", "10.0.0.5"])
    with pytest.raises(ConnectionRefusedError):
        connect_checked("mixed.example", 80, 1.0, WIDE, recorder.resolve, recorder.open)
    assert recorder.opened == ["10.0.0.5"]


def test_allowed_link_local_reaches_the_connect_step() -> None:
    recorder = Recorder(["169.254.169.254"])
    with pytest.raises(ConnectionRefusedError):
        connect_checked("169.254.169.254", 80, 1.0, wide(allow=("169.254.169.254",)), recorder.resolve, recorder.open)
    assert recorder.opened == ["169.254.169.254"]


def test_messages_name_what_to_allow() -> None:
    policy = FetchPolicy.build((), (), [("::", GRPC, "gRPC")], "the supernode")
    with pytest.raises(OriginRefused) as caught:
        policy.check("::1", "::1", GRPC)
    assert str(caught.value) == (
        f"origin [::1]:{GRPC} not allowed: the supernode's own gRPC address (allow it with --origin-allow [::1]:{GRPC})"
    )
    parse_rule(f"[::1]:{GRPC}")  # the entry the message names is a valid one
    with pytest.raises(OriginRefused, match=r"^origin localhost \(127\.0\.0\.1\):80 not allowed: loopback address"):
        WIDE.check("localhost", "127.0.0.1", 80)
