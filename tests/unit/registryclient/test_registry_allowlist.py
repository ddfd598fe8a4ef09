"""The upstream allow-list: what ?ns= and X-Dandelion-Registry may select, compared as normalised origins."""

from __future__ import annotations

import httpx
import pytest

from dfcommon.errors import InvalidArgument
from registryclient.allowlist import AllowList, origin_of
from registryclient.config import ClientConfig
from registryclient.credentials import Credentials
from registryclient.errors import RegistryError
from registryclient.registries import build_registry_map
from registryclient.selection import select_upstream
from registryclient.upstream import Upstream

HUB = "https://registry-1.docker.io"
LOCAL = "http://127.0.0.1:5000"
PRIVATE = "https://reg.example.com"
V6 = "http://[::1]:5000"
DENIED = "403 DENIED"
BAD = "400 UNSUPPORTED"


def decide(registry: str, entries: tuple[str, ...], ns: str | None, header: str | None) -> str:
    """What a request gets: the canonical upstream URL, or 'STATUS CODE' of its registry error; the mirror's
    selection (an empty --registry-map) and selection.select_upstream must agree."""
    answers = []
    registries = build_registry_map(registry)
    for select in (
        lambda: select_upstream(registry, ns, header),
        lambda: registries.select(ns, header, "ns/img")[0],
    ):
        try:
            answers.append(AllowList(registries.default, entries, registries.targets()).admit(select()))
        except RegistryError as exc:
            answers.append(f"{exc.status} {exc.code}")
    assert answers[0] == answers[1]
    return answers[0]


@pytest.mark.parametrize(
    ("registry", "entries", "ns", "header", "expected"),
    [
        # Docker Hub configured: its names map to the API host, which is allowed; nothing else is.
        (HUB, (), None, None, HUB),
        (HUB, (), "docker.io", None, HUB),
        (HUB, (), "index.docker.io", None, HUB),
        (HUB, (), "registry-1.docker.io:443", None, HUB),
        (HUB, (), "REGISTRY-1.Docker.IO.", None, HUB),
        (HUB, (), None, "https://registry-1.docker.io:443/", HUB),
        (HUB, (), "127.0.0.1:5000", None, DENIED),
        (HUB, (), None, LOCAL, DENIED),
        (HUB, (), "ghcr.io", None, DENIED),
        (HUB, (), None, "http://registry-1.docker.io", DENIED),  # downgrade to plain HTTP
        (HUB, (), None, "https://registry-1.docker.io:444", DENIED),
        (HUB, (), None, "https://registry-1.docker.io.evil.example", DENIED),
        (HUB, (), "registry-1.docker.io.evil.example", None, DENIED),
        (HUB, (), None, "https://index.docker.io", DENIED),  # only the ?ns= names alias; a URL is taken as written
        # Tricks that must not pass as an allowed name: userinfo, fragments, escapes, control and non-ASCII chars.
        (HUB, (), None, "https://registry-1.docker.io@evil.example", BAD),
        (HUB, (), None, "https://registry-1.docker.io:443@evil.example", BAD),
        (HUB, (), None, "https://registry-1.docker.io\\@evil.example", BAD),
        (HUB, (), None, "https://evil.example#@registry-1.docker.io", BAD),
        (HUB, (), None, "https://evil.example/?@registry-1.docker.io", BAD),
        (HUB, (), "registry-1.docker.io@evil.example", None, BAD),
        (HUB, (), None, "https://registry-1.docker.io%2eevil.example", BAD),
        (HUB, (), None, "https://registry-1.doc\tker.io", BAD),  # urlsplit drops the tab, a resolver would not
        (HUB, (), "registry-1.doc\nker.io", None, BAD),
        (HUB, (), None, "https://r\u0435gistry-1.docker.io", BAD),  # a Cyrillic e
        (HUB, (), "[::1", None, BAD),
        (HUB, (), None, "http://[::1", BAD),
        # A private registry on loopback: containerd's ?ns=HOST:PORT is that registry, over its own scheme.
        (LOCAL, (), "127.0.0.1:5000", None, LOCAL),
        (LOCAL, (), None, "http://127.0.0.1:5000/", LOCAL),
        (LOCAL, (), None, "HTTP://127.0.0.1:5000", LOCAL),
        (LOCAL, (), "127.0.0.1.:5000", None, DENIED),  # not a loopback name: https is picked, not the registry's http
        (LOCAL, (), None, "https://127.0.0.1:5000", DENIED),
        (LOCAL, (), "127.0.0.1:5001", None, DENIED),
        (LOCAL, (), "127.0.0.2:5000", None, DENIED),
        (LOCAL, (), "localhost:5000", None, DENIED),  # another name, even for the same address
        (LOCAL, (), "docker.io", None, DENIED),  # Docker Hub only when Docker Hub is the registry
        (LOCAL, (), None, "http://[::ffff:127.0.0.1]:5000", DENIED),
        # A private registry over HTTPS: case, trailing dot and the default port do not matter; scheme and port do.
        (PRIVATE, (), "reg.example.com", None, PRIVATE),
        (PRIVATE, (), "Reg.Example.COM.:443", None, PRIVATE),
        (PRIVATE, (), None, "https://reg.example.com.:443/", PRIVATE),
        (PRIVATE, (), "reg.example.com:8443", None, DENIED),
        (PRIVATE, (), None, "http://reg.example.com:443", DENIED),
        (PRIVATE, (), None, "http://reg.example.com", DENIED),
        (PRIVATE, (), "reg.example.com.evil.example", None, DENIED),
        (PRIVATE, (), "evil.example", None, DENIED),
        # IPv6 literals compare in canonical form.
        (V6, (), "[::1]:5000", None, V6),
        (V6, (), None, "http://[0:0:0:0:0:0:0:1]:5000", V6),
        (V6, (), None, "http://[::2]:5000", DENIED),
        (V6, (), None, "http://[::1]:5000@evil.example", BAD),
        # Entries: HOST[:PORT] gets the scheme ?ns= would (http on loopback, else https); URLs keep theirs.
        (HUB, ("127.0.0.1:5001",), "127.0.0.1:5001", None, "http://127.0.0.1:5001"),
        (HUB, ("127.0.0.1:5001",), None, "http://127.0.0.1:5001", "http://127.0.0.1:5001"),
        (HUB, ("127.0.0.1:5001",), None, "https://127.0.0.1:5001", DENIED),
        (HUB, ("127.0.0.1:5001",), "127.0.0.1:5002", None, DENIED),
        (HUB, ("127.0.0.1:5001",), "docker.io", None, HUB),  # the configured registry stays allowed
        (HUB, ("https://mirror.example:8443",), "mirror.example:8443", None, "https://mirror.example:8443"),
        (HUB, ("https://mirror.example:8443",), None, "http://mirror.example:8443", DENIED),
        (HUB, ("reg.example",), "reg.example:443", None, "https://reg.example"),
        (HUB, ("reg.example",), "reg.example:5000", None, DENIED),
        (HUB, ("REG.Example.",), None, "https://reg.example", "https://reg.example"),
        (HUB, ("[::1]:5001",), None, "http://[::1]:5001", "http://[::1]:5001"),
        (HUB, ("xn--bcher-kva.example",), "xn--bcher-kva.example", None, "https://xn--bcher-kva.example"),
        (LOCAL, ("docker.io",), "docker.io", None, HUB),
        # 'any' is the explicit opt-in to every well-formed upstream; malformed ones stay malformed.
        (HUB, ("any",), "evil.example", None, "https://evil.example"),
        (HUB, ("ANY",), None, "http://127.0.0.9:1", "http://127.0.0.9:1"),
        (HUB, ("any",), None, "https://registry-1.docker.io@evil.example", BAD),
    ],
)
def test_selection_through_the_allow_list(
    registry: str, entries: tuple[str, ...], ns: str | None, header: str | None, expected: str
) -> None:
    assert decide(registry, entries, ns, header) == expected


def test_denial_names_the_upstream_and_the_flag_on_one_line() -> None:
    with pytest.raises(RegistryError) as info:
        AllowList(HUB).admit("http://127.0.0.1:5001")
    error = info.value
    assert (error.status, error.code) == (403, "DENIED")
    assert "http://127.0.0.1:5001" in error.message and "--allow-registry http://127.0.0.1:5001" in error.message
    assert "\n" not in error.message
    assert error.detail == {"upstream": "http://127.0.0.1:5001"}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("a/b", "want HOST"),
        ("x@evil.example", "want HOST"),
        ("", "want HOST"),
        ("h:99999", "invalid port"),
        ("ftp://x", "invalid registry URL"),
        ("http://x/path", "no path"),
        ("https://u:p@reg.example", "must not carry credentials"),
        ("http://[::1", "invalid registry URL"),
        ("bücher.example", "non-ASCII"),
        ("reg..example", "invalid registry host"),
    ],
)
def test_bad_entries_are_one_line_errors(entry: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message) as info:
        AllowList(HUB, (entry,))
    assert "\n" not in str(info.value)


def test_origins_are_normalised() -> None:
    assert origin_of("HTTPS://Reg.Example.:443") == origin_of("https://reg.example")
    assert origin_of("https://reg.example").url == "https://reg.example"
    assert origin_of("http://reg.example:80").url == "http://reg.example"
    assert origin_of("http://[0::1]:5000").url == "http://[::1]:5000"
    assert origin_of("https://reg.example").port == 443


async def test_the_upstream_client_refuses_other_registries_without_a_request() -> None:
    seen: list[httpx.Request] = []

    def registry(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers={"Content-Length": "5"})

    upstream = Upstream(ClientConfig(registry=LOCAL), transport=httpx.MockTransport(registry))
    anonymous = Credentials.from_header(None)
    rogue = "http://127.0.0.2:5000"
    calls = [
        upstream.check_login(rogue, anonymous),
        upstream.manifest("GET", rogue, "ns/img", "latest", [], anonymous),
        upstream.listing(rogue, "/v2/_catalog", [], "registry:catalog:*", anonymous, "catalog"),
        upstream.authorize_blob(rogue, "ns/img", "sha256:" + "a" * 64, anonymous),
    ]
    for call in calls:
        with pytest.raises(RegistryError) as info:
            await call
        assert info.value.status == 403
    assert seen == []
    grant = await upstream.authorize_blob(LOCAL + "/", "ns/img", "sha256:" + "a" * 64, anonymous)
    assert grant.url == f"{LOCAL}/v2/ns/img/blobs/sha256:{'a' * 64}" and len(seen) == 1
    await upstream.aclose()
