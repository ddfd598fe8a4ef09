"""The supernode membership (peer.membership): the --supernode syntax, DNS names refreshed, the last good answer
kept, refreshes after failures rate-limited."""

from __future__ import annotations

import socket

import pytest

from dfcommon.errors import InvalidArgument
from peer.config import parse_supernodes
from peer.membership import Membership, dial_target, parse_entry, resolve


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sn1:8002", "sn1:8002"),
        (" 10.0.0.5:8002 ", "10.0.0.5:8002"),
        ("[::1]:8002", "[::1]:8002"),
        ("dns:///supernodes.test:8002", "dns:///supernodes.test:8002"),
        ("DNS:///supernodes.test:8002", "dns:///supernodes.test:8002"),
    ],
)
def test_entries(text: str, expected: str) -> None:
    assert parse_entry(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("sn1", "want HOST:PORT"),
        ("dns://10.0.0.53/supernodes.test:8002", "no DNS server part"),
        ("dns:///supernodes.test", "want HOST:PORT"),
        ("http://sn1:8002", "want HOST:PORT or dns:///NAME:PORT"),
    ],
)
def test_bad_entries_are_one_line_errors(text: str, why: str) -> None:
    with pytest.raises(InvalidArgument, match=why) as caught:
        parse_entry(text)
    assert "\n" not in str(caught.value)


def test_the_flag_mixes_entries_and_dial_targets_strip_the_scheme() -> None:
    entries = parse_supernodes("a:1, dns:///svc.test:8002,")
    assert entries == ["a:1", "dns:///svc.test:8002"]
    assert [dial_target(e) for e in entries] == ["a:1", "svc.test:8002"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_dns_members_follow_the_answers_and_keep_the_last_good_one() -> None:
    answers: list[list[str] | OSError] = [
        ["10.0.0.3:8002", "10.0.0.4:8002"],
        socket.gaierror("temporary failure"),
        [],
        ["10.0.0.4:8002", "10.0.0.5:8002"],
    ]
    asked: list[tuple[str, int]] = []

    async def resolver(name: str, port: int) -> list[str]:
        asked.append((name, port))
        answer = answers.pop(0)
        if isinstance(answer, OSError):
            raise answer
        return answer

    clock = FakeClock()
    membership = Membership(["static:9", "dns:///svc.test:8002"], resolver, clock)
    assert membership.dynamic and membership.members() == ["static:9"]  # nothing resolved yet
    assert await membership.refresh()
    assert membership.members() == ["static:9", "10.0.0.3:8002", "10.0.0.4:8002"]
    assert not await membership.refresh()  # the resolver failed: the last answer stays
    assert not await membership.refresh()  # no address: the last answer stays
    assert membership.members() == ["static:9", "10.0.0.3:8002", "10.0.0.4:8002"]
    assert not await membership.refresh_soon()  # within MIN_REFRESH_GAP_S of the last look: not asked
    clock.now += 5
    assert await membership.refresh_soon()
    assert membership.members() == ["static:9", "10.0.0.4:8002", "10.0.0.5:8002"]
    assert asked == [("svc.test", 8002)] * 4


async def test_a_list_without_names_never_resolves() -> None:
    async def resolver(name: str, port: int) -> list[str]:
        raise AssertionError("not asked")

    membership = Membership(["a:1", "b:2"], resolver)
    assert not membership.dynamic
    assert not await membership.refresh_soon()
    assert membership.members() == ["a:1", "b:2"]


async def test_the_system_resolver_gives_every_address() -> None:
    assert await resolve("127.0.0.1", 8002) == ["127.0.0.1:8002"]
