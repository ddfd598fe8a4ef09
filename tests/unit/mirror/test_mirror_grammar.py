"""Repository names, tags, digests and byte ranges as the mirror accepts them."""

from __future__ import annotations

import json

import pytest

from mirror.errors import error_response
from mirror.ranges import parse_range
from registryclient.errors import RegistryError
from registryclient.names import validate_digest, validate_name, validate_reference

SHA = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "name",
    ["alpine", "library/alpine", "ns/img", "a/b/c/d", "my-org/my_app", "a.b/c__d", "x1/y2-z3", "a--b/c"],
)
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "..",
        "ns/../img",
        "ns/..",
        "../etc",
        "ns//img",
        "/ns/img",
        "ns/img/",
        "Upper/case",
        "ns/img..x",
        "ns/-img",
        "ns/img_",
        "ns/im g",
        "ns/img%2f",
        "a" * 256,
    ],
)
def test_invalid_names_are_name_invalid(name: str) -> None:
    with pytest.raises(RegistryError) as info:
        validate_name(name)
    assert (info.value.status, info.value.code) == (400, "NAME_INVALID")


@pytest.mark.parametrize("reference", ["latest", "v1.2.3", "_x", "A-b_c.d", "t" * 128, SHA, "sha512:" + "0f" * 64])
def test_valid_references(reference: str) -> None:
    assert validate_reference(reference) == reference


@pytest.mark.parametrize(
    ("reference", "code"),
    [
        ("-latest", "TAG_INVALID"),
        (".hidden", "TAG_INVALID"),
        ("t" * 129, "TAG_INVALID"),
        ("..", "TAG_INVALID"),
        ("sha256:xyz", "DIGEST_INVALID"),
        ("sha256:" + "AB" * 32, "DIGEST_INVALID"),
        ("sha256:" + "ab" * 31, "DIGEST_INVALID"),
        ("md5:" + "ab" * 16, "DIGEST_INVALID"),
        ("sha256:", "DIGEST_INVALID"),
    ],
)
def test_invalid_references(reference: str, code: str) -> None:
    with pytest.raises(RegistryError) as info:
        validate_reference(reference)
    assert (info.value.status, info.value.code) == (400, code)


def test_blob_digests_are_sha256_only() -> None:
    assert validate_digest(SHA, ("sha256",)) == SHA
    with pytest.raises(RegistryError, match="unsupported algorithm 'sha512'"):
        validate_digest("sha512:" + "0f" * 64, ("sha256",))


@pytest.mark.parametrize(
    ("header", "length", "expected"),
    [
        ("bytes=0-", 10, (0, 9, 10, "bytes 0-9/10")),
        ("bytes=4-", 10, (4, 9, 6, "bytes 4-9/10")),
        ("bytes=4-6", 10, (4, 6, 3, "bytes 4-6/10")),
        ("bytes=4-100", 10, (4, 9, 6, "bytes 4-9/10")),
        ("bytes=9-9", 10, (9, 9, 1, "bytes 9-9/10")),
        ("bytes=-3", 10, (7, 9, 3, "bytes 7-9/10")),
        ("bytes=-30", 10, (0, 9, 10, "bytes 0-9/10")),
        ("BYTES = 2 - 3", 10, (2, 3, 2, "bytes 2-3/10")),
    ],
)
def test_ranges(header: str, length: int, expected: tuple[int, int, int, str]) -> None:
    byte_range = parse_range(header, length)
    assert (byte_range.start, byte_range.end, byte_range.size, byte_range.content_range) == expected


@pytest.mark.parametrize(
    "header",
    [
        "bytes=10-",
        "bytes=11-12",
        "bytes=5-4",
        "bytes=-0",
        "bytes=-",
        "bytes=a-",
        "items=0-",
        "bytes=0-1,3-4",
        "bytes=" + "9" * 5000 + "-",  # past any end (and too long for int())
        "bytes=" + "9" * 5000 + "-" + "9" * 5000,
        "bytes=" + "1" * 20 + "-3",
    ],
)
def test_invalid_ranges_are_416(header: str) -> None:
    with pytest.raises(RegistryError) as info:
        parse_range(header, 10)
    assert info.value.status == 416
    assert info.value.code == "RANGE_INVALID"
    assert info.value.headers["Content-Range"] == "bytes */10"
    assert len(str(info.value)) < 300


def test_huge_range_ends_mean_the_end() -> None:
    """An end or suffix of thousands of digits reaches past any blob: clamped as RFC 9110 says."""
    assert parse_range("bytes=3-" + "9" * 5000, 10).content_range == "bytes 3-9/10"
    assert parse_range("bytes=-" + "9" * 5000, 10).content_range == "bytes 0-9/10"
    assert parse_range("bytes=" + "0" * 5000 + "2-3", 10).content_range == "bytes 2-3/10"


def test_error_envelope() -> None:
    error = RegistryError.digest_invalid("sha256:zz", "want 64 lowercase hex digits")
    response = error_response(error)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"
    body = json.loads(bytes(response.body))
    assert body == {
        "errors": [
            {
                "code": "DIGEST_INVALID",
                "message": "invalid digest 'sha256:zz': want 64 lowercase hex digits",
                "detail": {"digest": "sha256:zz"},
            }
        ]
    }
    assert int(response.headers["content-length"]) == len(response.body)


def test_head_error_has_length_but_no_body() -> None:
    response = error_response(RegistryError.not_found("/v2/x"), head_only=True)
    assert response.body == b""
    assert int(response.headers["content-length"]) > 0


def test_unauthorized_carries_basic_challenge() -> None:
    error = RegistryError.unauthorized("Dandelion registry mirror")
    assert error.status == 401
    assert error.headers["WWW-Authenticate"] == 'Basic realm="Dandelion registry mirror"'


def test_unsupported_is_405_with_allow() -> None:
    error = RegistryError.unsupported("PUT", "/v2/a/manifests/b")
    assert (error.status, error.code, error.headers["Allow"]) == (405, "UNSUPPORTED", "GET, HEAD")
