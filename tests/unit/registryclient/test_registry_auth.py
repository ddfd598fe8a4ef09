"""WWW-Authenticate parsing, credentials handling and upstream selection."""

from __future__ import annotations

import base64

import pytest

from registryclient.challenges import Challenge, find_challenge, parse_challenges
from registryclient.credentials import Credentials
from registryclient.errors import RegistryError
from registryclient.selection import select_upstream, upstream_name

HUB = "https://registry-1.docker.io"


def test_docker_hub_bearer_challenge() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/alpine:pull"'
    )
    assert parse_challenges([header]) == [
        Challenge(
            "bearer",
            {
                "realm": "https://auth.docker.io/token",
                "service": "registry.docker.io",
                "scope": "repository:library/alpine:pull",
            },
        )
    ]


def test_several_challenges_in_one_and_several_headers() -> None:
    challenges = parse_challenges(['Basic realm="a b", Bearer realm="http://t/token" ,service=svc', "Negotiate abc=="])
    assert [c.scheme for c in challenges] == ["basic", "bearer", "negotiate"]
    assert challenges[0].params == {"realm": "a b"}
    assert challenges[1].params == {"realm": "http://t/token", "service": "svc"}
    assert find_challenge(challenges, "Bearer") is challenges[1]
    assert find_challenge(challenges, "digest") is None


def test_quoted_escapes_and_case() -> None:
    (challenge,) = parse_challenges(['BASIC Realm="say \\"hi\\", ok"'])
    assert challenge == Challenge("basic", {"realm": 'say "hi", ok'})


def test_scope_with_several_actions_and_garbage() -> None:
    (challenge,) = parse_challenges(['Bearer scope="repository:a/b:pull,push" realm="x"'])
    assert challenge.params["scope"] == "repository:a/b:pull,push"
    assert parse_challenges(["", "   ", '=== "'])[:1] == []


def test_credentials_never_shown() -> None:
    header = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    creds = Credentials.from_header(header)
    assert creds.basic() == ("alice", "s3cret")
    assert "s3cret" not in repr(creds) and header not in str(creds) and "alice" not in repr(creds)
    assert creds.key != Credentials.from_header("Basic " + base64.b64encode(b"alice:other").decode()).key
    assert header not in creds.key
    assert Credentials.from_header(None).anonymous and Credentials.from_header("  ").anonymous
    assert Credentials.from_header("Bearer abc").scheme == "bearer"
    assert Credentials.from_header("Bearer abc").basic() is None
    assert Credentials.from_header("Basic !!!").basic() is None


@pytest.mark.parametrize(
    ("ns", "header", "expected"),
    [
        (None, None, HUB),
        ("docker.io", None, HUB),
        ("127.0.0.1:5000", None, "http://127.0.0.1:5000"),
        ("localhost:5000", None, "http://localhost:5000"),
        ("registry.example.com", None, "https://registry.example.com"),
        ("registry.example.com:8443", None, "https://registry.example.com:8443"),
        ("ignored.example", "http://10.0.0.1:5000", "http://10.0.0.1:5000"),
        (None, "127.0.0.2:5001", "http://127.0.0.2:5001"),
    ],
)
def test_upstream_selection(ns: str | None, header: str | None, expected: str) -> None:
    assert select_upstream(HUB, ns, header) == expected


def test_selection_keeps_the_default_registrys_scheme() -> None:
    assert select_upstream("http://reg.internal:5000", "reg.internal:5000", None) == "http://reg.internal:5000"


@pytest.mark.parametrize(
    ("ns", "header"), [("a/b", None), ("x@evil", None), (None, "ftp://x"), (None, "http://x/path"), ("h:99999", None)]
)
def test_bad_selection_is_400(ns: str | None, header: str | None) -> None:
    with pytest.raises(RegistryError) as info:
        select_upstream(HUB, ns, header)
    assert info.value.status == 400


def test_docker_hub_official_images_live_under_library() -> None:
    assert upstream_name(HUB, "alpine") == "library/alpine"
    assert upstream_name(HUB, "ns/img") == "ns/img"
    assert upstream_name("http://127.0.0.1:5000", "alpine") == "alpine"
