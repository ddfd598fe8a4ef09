"""Many upstreams: --registry-map parsing, which upstream a request reaches, per-upstream TLS, flags and config file."""

from __future__ import annotations

import argparse
import ssl
from pathlib import Path

import pytest
from fixtures.certs import identity, make_certs

from dfcommon.configfile import parse_args_with_config
from dfcommon.errors import InvalidArgument
from dfdaemon.flags import build_parser, config_from_args
from mirror.config import MirrorConfig, add_mirror_arguments, mirror_config_from_args
from registryclient.allowlist import AllowList
from registryclient.credentials import Credentials
from registryclient.errors import RegistryError
from registryclient.registries import UpstreamTls, build_registry_map, parse_mapping, registry_name, split_ca_entries
from registryclient.upstream import Upstream

HUB = "https://registry-1.docker.io"
PROXY = "https://hub-proxy.internal:5000"
HARBOR = "https://harbor.internal"
GAPPED = "http://127.0.0.1:5005"
MAP = (f"docker.io={PROXY}", f"ghcr.io={HARBOR}", f"quay.io={GAPPED}")


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("docker.io=https://hub-proxy.internal:5000", ("docker.io", PROXY, "")),
        ("Index.Docker.IO=https://hub-proxy.internal:5000/", ("docker.io", PROXY, "")),
        ("registry-1.docker.io:443=https://HUB-PROXY.internal:5000", ("docker.io", PROXY, "")),
        ("ghcr.io = https://harbor.internal:443", ("ghcr.io", HARBOR, "")),
        ("127.0.0.1:5000=http://127.0.0.1:5005", ("127.0.0.1:5000", GAPPED, "")),
        # A path is a repository prefix at the target: a Harbor proxy-cache project.
        ("docker.io=https://harbor.internal/hub-cache/", ("docker.io", HARBOR, "hub-cache")),
        ("ghcr.io=https://harbor.internal:443/caches/ghcr", ("ghcr.io", HARBOR, "caches/ghcr")),
    ],
)
def test_mapping_entries_are_normalised(entry: str, expected: tuple[str, str, str]) -> None:
    assert parse_mapping(entry) == expected


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("docker.io", "want NAME=URL"),
        ("=https://x.example", "want NAME=URL"),
        ("docker.io=", "want NAME=URL"),
        ("docker.io=hub.internal", "want http(s)://HOST[:PORT]"),
        ("docker.io=https://hub.internal/v2", "not its /v2/ API path"),
        ("docker.io=https://hub.internal/v2/library", "not its /v2/ API path"),
        ("docker.io=https://hub.internal/Hub-Cache", "no repository prefix"),
        ("docker.io=https://hub.internal/a//b", "no repository prefix"),
        ("docker.io=https://hub.internal/cache?x=1", "want no path or query"),
        ("docker.io=https://u:p@hub.internal", "must not carry credentials"),
        ("ghcr.io/org=https://hub.internal", "invalid registry name"),
        ("ghcr.io:x=https://hub.internal", "bad port"),
    ],
)
def test_bad_mapping_entries_are_one_line_errors(entry: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match="--registry-map") as info:
        parse_mapping(entry)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_name_mapped_twice_to_different_upstreams_is_refused() -> None:
    with pytest.raises(InvalidArgument, match=r"docker\.io is mapped twice"):
        build_registry_map(HUB, (f"docker.io={PROXY}", f"index.docker.io={HARBOR}"))
    assert build_registry_map(HUB, (f"docker.io={PROXY}", f"docker.io={PROXY}/")).mapped == {"docker.io": PROXY}
    with pytest.raises(InvalidArgument, match=r"docker\.io is mapped twice \(https://harbor\.internal/a and "):
        build_registry_map(HUB, (f"docker.io={HARBOR}/a", f"docker.io={HARBOR}/b"))


@pytest.mark.parametrize(
    ("registry", "ns", "header", "name", "expected"),
    [
        # Hub is the default and docker.io is mapped: every Hub request goes to the proxy, with library/ for one-part
        # names (the proxy serves Hub's names), whether the client names docker.io or nothing (dockerd).
        (HUB, None, None, "alpine", (PROXY, "library/alpine")),
        (HUB, "docker.io", None, "library/alpine", (PROXY, "library/alpine")),
        (HUB, "index.docker.io", None, "alpine", (PROXY, "library/alpine")),
        (HUB, None, "registry-1.docker.io", "ns/img", (PROXY, "ns/img")),
        # Mapped names by ?ns=, by the header, and in front of the repository name (podman, docker by address).
        (HUB, "ghcr.io", None, "org/img", (HARBOR, "org/img")),
        (HUB, None, "GHCR.IO", "org/img", (HARBOR, "org/img")),
        (HUB, None, None, "ghcr.io/org/img", (HARBOR, "org/img")),
        (HUB, None, None, "quay.io/img", (GAPPED, "img")),
        (HUB, None, None, "docker.io/library/alpine", (PROXY, "library/alpine")),
        # ?ns= wins over a name prefix: the name is the upstream's own.
        (HUB, "quay.io", None, "ghcr.io/img", (GAPPED, "ghcr.io/img")),
        # Unmapped names follow the old rules (the allow-list decides later); unmapped prefixes are repository names.
        (HUB, "other.example", None, "a/b", ("https://other.example", "a/b")),
        (HUB, None, None, "other.example/a", (PROXY, "other.example/a")),
        (HUB, None, None, "ghcr.io", (PROXY, "library/ghcr.io")),
        # A private default: requests naming nothing go there; docker.io is still mapped to the proxy.
        ("http://127.0.0.1:5000", None, None, "ns/img", ("http://127.0.0.1:5000", "ns/img")),
        ("http://127.0.0.1:5000", "docker.io", None, "library/x", (PROXY, "library/x")),
        ("http://127.0.0.1:5000", None, "http://127.0.0.1:5000", "x", ("http://127.0.0.1:5000", "x")),
    ],
)
def test_which_upstream_a_request_reaches(
    registry: str, ns: str | None, header: str | None, name: str, expected: tuple[str, str]
) -> None:
    assert build_registry_map(registry, MAP).select(ns, header, name) == expected


PROJECTS = (f"docker.io={HARBOR}/hub-cache", f"ghcr.io={HARBOR}/ghcr-cache", f"quay.io={HARBOR}")


@pytest.mark.parametrize(
    ("registry", "ns", "header", "name", "expected"),
    [
        # docker.io mapped to a Harbor proxy-cache project: Hub's names, library/ included, under the project.
        (HUB, None, None, "alpine", (HARBOR, "hub-cache/library/alpine")),
        (HUB, "docker.io", None, "library/alpine", (HARBOR, "hub-cache/library/alpine")),
        (HUB, None, "index.docker.io", "team/app", (HARBOR, "hub-cache/team/app")),
        (HUB, None, None, "docker.io/alpine", (HARBOR, "hub-cache/library/alpine")),
        # Another project on the same Harbor: its own prefix, and no library/ (ghcr.io has no official images).
        (HUB, "ghcr.io", None, "org/img", (HARBOR, "ghcr-cache/org/img")),
        (HUB, None, None, "ghcr.io/img", (HARBOR, "ghcr-cache/img")),
        # Harbor's root, mapped or named: its own names as they are.
        (HUB, "quay.io", None, "proj/img", (HARBOR, "proj/img")),
        (HUB, "harbor.internal", None, "proj/img", (HARBOR, "proj/img")),
        (HUB, None, HARBOR, "img", (HARBOR, "img")),
        # A private default keeps its names; docker.io still goes to the project.
        ("http://127.0.0.1:5000", None, None, "img", ("http://127.0.0.1:5000", "img")),
        ("http://127.0.0.1:5000", "docker.io", None, "alpine", (HARBOR, "hub-cache/library/alpine")),
    ],
)
def test_a_target_with_a_path_puts_its_prefix_before_the_repository_name(
    registry: str, ns: str | None, header: str | None, name: str, expected: tuple[str, str]
) -> None:
    registries = build_registry_map(registry, PROJECTS)
    assert registries.select(ns, header, name) == expected
    assert registries.targets() == {HARBOR, *([] if registry == HUB else [registry])}
    assert "docker.io -> https://harbor.internal/hub-cache" in registries.describe()


def test_mapped_targets_are_allowed_and_hub_itself_no_longer_is() -> None:
    registries = build_registry_map(HUB, MAP)
    allowed = AllowList(registries.default, (), registries.targets())
    for target in (PROXY, HARBOR, GAPPED):
        assert allowed.admit(target) == target
    with pytest.raises(RegistryError) as info:
        allowed.admit(HUB)  # docker.io goes to the proxy now: the real Hub is not an upstream of this mirror
    assert info.value.status == 403
    assert AllowList(registries.default, ("any",), registries.targets()).admit(HUB) == HUB


def test_tls_settings_per_upstream_by_host_or_mapped_name() -> None:
    registries = build_registry_map(
        HUB,
        MAP,
        ca_entries=[("hub-proxy.internal:5000", "/ca/hub.pem"), ("ghcr.io", "/ca/harbor.pem")],
        insecure_entries=["harbor.internal", "quay.io"],
    )
    assert registries.tls_for(PROXY) == UpstreamTls("/ca/hub.pem", False)
    assert registries.tls_for(HARBOR) == UpstreamTls("/ca/harbor.pem", True)
    assert registries.tls_for(GAPPED) == UpstreamTls(None, True)
    assert registries.tls_for("https://elsewhere.example") is None


@pytest.mark.parametrize(
    ("ca", "insecure", "message"),
    [
        ([("nowhere.example", "/ca.pem")], [], "--registry-ca 'nowhere.example' names no upstream"),
        ([], ["hub-proxy.internal:5001"], "--registry-insecure 'hub-proxy.internal:5001' names no upstream"),
        ([], ["a/b"], "--registry-insecure 'a/b': invalid registry name"),
        ([], ["127.0.0.1"], "--registry-insecure '127.0.0.1': several upstreams have that host"),
    ],
)
def test_tls_settings_for_unknown_upstreams_are_one_line_errors(
    ca: list[tuple[str, str]], insecure: list[str], message: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        build_registry_map("http://127.0.0.1:5000", MAP, ca, insecure)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_ca_entries_split_into_the_shared_bundle_and_scoped_ones() -> None:
    assert split_ca_entries(["/etc/ca.pem"]) == ("/etc/ca.pem", [])
    assert split_ca_entries(["ghcr.io=/ca/a.pem", "/etc/ca.pem", "127.0.0.1:5000=ca.pem"]) == (
        "/etc/ca.pem",
        [("ghcr.io", "/ca/a.pem"), ("127.0.0.1:5000", "ca.pem")],
    )
    assert split_ca_entries(["/odd/a=b.pem"]) == ("/odd/a=b.pem", [])  # a path with '=' is still a path
    with pytest.raises(InvalidArgument, match="one bundle for every upstream"):
        split_ca_entries(["/a.pem", "/b.pem"])
    with pytest.raises(InvalidArgument, match="want HOST=FILE"):
        split_ca_entries(["ghcr.io="])


def test_registry_names() -> None:
    assert registry_name("Docker.IO.") == "docker.io"
    assert registry_name("registry-1.docker.io:443") == "docker.io"
    assert registry_name("registry-1.docker.io:5000") == "registry-1.docker.io:5000"
    assert registry_name("[::1]:5000") == "[::1]:5000"


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_mirror_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real CA bundle (scripts/make_certs.sh) for flags that load it."""
    directory = tmp_path_factory.mktemp("certs")
    make_certs(directory, "reg=127.0.0.1")
    return identity(directory, "reg").ca


def test_flags_build_the_map(ca_file: Path) -> None:
    ca = ca_file
    config = mirror_config_from_args(
        _parse(
            "--registry-map",
            f"docker.io={PROXY},ghcr.io={HARBOR}",
            "--registry-map",
            f"quay.io={GAPPED}",
            "--registry-ca",
            f"docker.io={ca}",
            "--registry-insecure",
            "ghcr.io",
        )
    )
    assert config is not None
    assert config.registry_map == MAP and config.upstream_cas == (("docker.io", str(ca)),)
    assert config.registry_ca is None and config.insecure_registries == ("ghcr.io",)
    registries = config.registries()
    assert registries.default == PROXY and registries.tls_for(HARBOR) == UpstreamTls(None, True)


def test_an_unreadable_scoped_ca_is_a_one_line_error() -> None:
    with pytest.raises(InvalidArgument, match=r"--registry-ca ./nonexistent/ca\.pem. is not a readable file"):
        mirror_config_from_args(
            _parse("--registry-map", f"docker.io={PROXY}", "--registry-ca", "docker.io=/nonexistent/ca.pem")
        )


DAEMON_ARGS = ("--supernode", "127.0.0.1:8002", "--listen", "127.0.0.2", "--data-dir", "/tmp/unused")


def _daemon(tmp_path: Path, name: str, text: str, *argv: str) -> argparse.Namespace:
    (tmp_path / name).write_text(text)
    return parse_args_with_config(
        build_parser(), [*DAEMON_ARGS, "--config", str(tmp_path / name), *argv], "DFDAEMON_", {}
    )


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (
            "dfdaemon.toml",
            '[registry-map]\n"docker.io" = "https://hub-proxy.internal:5000"\n"ghcr.io" = "https://harbor.internal"\n'
            '"quay.io" = "http://127.0.0.1:5005"\n[registry-ca]\n"ghcr.io" = "CA"\n',
        ),
        (
            "dfdaemon.yaml",
            "registry-map:\n  - docker.io=https://hub-proxy.internal:5000\n  - ghcr.io=https://harbor.internal\n"
            "  - quay.io=http://127.0.0.1:5005\nregistry-ca:\n  - ghcr.io=CA\n",
        ),
    ],
)
def test_the_config_file_takes_tables_or_lists(tmp_path: Path, ca_file: Path, name: str, text: str) -> None:
    ns = _daemon(tmp_path, name, text.replace("CA", str(ca_file)), "--registry-insecure", "quay.io")
    config = mirror_config_from_args(ns)
    assert config is not None and config.registry_map == MAP
    registries = config.registries()
    assert registries.tls_for(HARBOR) == UpstreamTls(str(ca_file), False)
    # The peer's own fetches from the upstreams: allowed by the fetch policy, with the same TLS settings.
    peer = config_from_args(ns)
    assert {"hub-proxy.internal:5000", "harbor.internal:443", "127.0.0.1:5005"} <= set(peer.origin_allow)
    assert [(t.host, t.port, t.ca_file) for t in peer.origin_tls] == [("harbor.internal", 443, str(ca_file))]


def test_a_single_registry_ca_file_keeps_working(tmp_path: Path, ca_file: Path) -> None:
    ns = _daemon(tmp_path, "dfdaemon.yaml", f"registry-ca: {ca_file}\n")
    config = mirror_config_from_args(ns)
    assert config == MirrorConfig(registry_ca=str(ca_file))
    assert config_from_args(ns).origin_ca_file == str(ca_file)


def test_a_file_without_certificates_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(InvalidArgument, match="holds no usable CA certificate") as info:
        mirror_config_from_args(
            _parse("--registry-map", f"docker.io={PROXY}", "--registry-ca", f"docker.io={tmp_path}/junk.pem")
        )
    assert "\n" not in str(info.value)


async def test_each_upstream_is_verified_with_its_own_ca(tmp_path: Path) -> None:
    """A real TLS handshake per upstream: the mapped upstream trusts only its own CA, the default only the system's."""
    import asyncio

    make_certs(tmp_path, "reg=127.0.0.1")
    reg = identity(tmp_path, "reg")
    ca_file = reg.ca
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(reg.cert, reg.key)
    requests: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    mapped = f"https://127.0.0.1:{port}"
    config = MirrorConfig(registry_map=(f"ghcr.io={mapped}",), upstream_cas=(("ghcr.io", str(ca_file)),))
    upstream = Upstream(config)
    try:
        await upstream.check_login(mapped, Credentials.from_header(None))  # trusted through its own CA
        other = Upstream(MirrorConfig(registry=mapped))  # the same server as a default without the CA: refused
        try:
            with pytest.raises(RegistryError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
                await other.check_login(mapped, Credentials.from_header(None))
        finally:
            await other.aclose()
    finally:
        await upstream.aclose()
        server.close()
        await server.wait_closed()
    assert len(requests) == 1 and requests[0].startswith(b"GET /v2/ ")
