"""Hostile URLs and byte ranges are InvalidArgument with one short line, never another exception."""

from __future__ import annotations

import pytest

from dfcommon.byterange import parse_byte_range
from dfcommon.errors import InvalidArgument
from dfcommon.identity import validate_url


@pytest.mark.parametrize(
    "url",
    [
        "http://h:99999/x",
        "http://[::1",
        "http://h:abc/x",
        "http://127.0.0.1:-1/x",
        "http://h:" + "9" * 5000 + "/x",
        "http://h/x\x00y",
        "http://h/x\r\nHost: evil",
        "ftp://h/x",
        "http:///x",
        "",
        "http://h/" + "a" * 9000,
    ],
)
def test_hostile_urls(url: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_url(url)
    assert "\n" not in str(info.value) and len(str(info.value)) < 400


@pytest.mark.parametrize("url", ["http://h/x", "https://127.0.0.1:8080/a?b=c", "http://[::1]:80/x"])
def test_good_urls(url: str) -> None:
    assert validate_url(url) == url


@pytest.mark.parametrize("text", ["9" * 5000 + "-", "1-" + "9" * 5000, "5-1", "-1", "1-2-3", "", "x-1", " " * 500])
def test_hostile_byte_ranges(text: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_byte_range(text)
    assert len(str(info.value)) < 200


def test_byte_ranges() -> None:
    assert parse_byte_range("0-9") == (0, 9)
    assert parse_byte_range(" 5- ") == (5, None)
    assert parse_byte_range("9223372036854775806-9223372036854775807") == (2**63 - 2, 2**63 - 1)
