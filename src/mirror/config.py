"""Mirror configuration: the dataclass, its command-line flags and their validation."""

from __future__ import annotations

import argparse
import os
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from dfcommon.configfile import ReplacingAppend
from dfcommon.errors import InvalidArgument
from dfcommon.fetchpolicy import split_entries
from dfcommon.sizes import parse_hostport

if TYPE_CHECKING:
    from mirror.registries import RegistryMap

DEFAULT_LISTEN = "127.0.0.1:65001"
DEFAULT_REGISTRY = "https://registry-1.docker.io"
OFF = "off"


@dataclass(frozen=True)
class MirrorConfig:
    """Where the mirror listens, which registry it fronts and how patiently it talks to it."""

    # Loopback only by default: the mirror serves this host's container runtimes, not the network.
    listen: str = DEFAULT_LISTEN
    # Docker Hub, because `registry-mirrors` in dockerd only ever applies to Docker Hub names.
    registry: str = DEFAULT_REGISTRY
    # PEM bundle trusted for the upstream's TLS in addition to the system's CAs (private registries).
    registry_ca: str | None = None
    # Skip TLS verification of the upstream (test registries with self-signed certificates only).
    insecure: bool = False
    # A registry that does not accept a connection in 5 s is down; answering 503 quickly lets
    # dockerd fall back to the registry itself instead of hanging the pull.
    connect_timeout_s: float = 5.0
    # Manifests, tokens and HEADs are small; 30 s covers a loaded registry without hanging clients forever.
    read_timeout_s: float = 30.0
    # The swarm answers open() once the origin (or a peer) has answered; a minute without that
    # means something is stuck, and a 504 lets the client retry or fall back.
    blob_open_timeout_s: float = 60.0
    # How long an upstream "yes, this client may read this blob" is reused: short, so revoked access
    # stops within a minute, long enough that the layers of one pull cost one check each.
    auth_cache_ttl_s: float = 60.0
    # Tokens are renewed this long before they expire so none runs out between check and use.
    token_expiry_margin_s: float = 10.0
    # distribution refuses manifests over 4 MiB, so a bigger answer is not a manifest.
    max_manifest_bytes: int = 4 * 1024 * 1024
    # Upstream connections kept open across requests (a pull asks for a handful at once).
    max_upstream_connections: int = 32
    # When an image manifest passes, have the swarm's seed start loading its layers (see mirror.prefetch).
    prefetch_layers: bool = True
    # Big layers that are not cached go into the swarm one at a time, in manifest order, while the one running is
    # fast (see mirror.admission): docker then unpacks each layer while the next one downloads.
    ordered_layers: bool = True
    # Upstreams besides `registry` that a client may pick with ?ns= or X-Dandelion-Registry (HOST[:PORT],
    # http(s)://HOST[:PORT], or "any"). None by default: the mirror trusts the upstream a request names to say
    # whether the client may read a cached blob, so a registry the client chooses could vouch for any private layer
    # (see mirror.allowlist).
    allowed_registries: tuple[str, ...] = ()
    # NAME=URL: requests naming registry NAME (?ns=, X-Dandelion-Registry, or NAME/ before the repository name) go to
    # URL instead (docker.io to a Hub proxy, anything to an air-gapped registry); see mirror.registries.
    registry_map: tuple[str, ...] = ()
    # (HOST[:PORT] of an upstream or a mapped NAME, PEM bundle) trusted for that upstream only, besides registry_ca.
    upstream_cas: tuple[tuple[str, str], ...] = ()
    # Upstreams (HOST[:PORT] or mapped NAME) whose TLS certificate is not verified (test registries only).
    insecure_registries: tuple[str, ...] = ()

    def registries(self) -> RegistryMap:
        """The default upstream, the name mapping and each upstream's TLS settings (InvalidArgument if bad)."""
        from mirror.registries import build_registry_map  # it builds on this module

        return build_registry_map(self.registry, self.registry_map, self.upstream_cas, self.insecure_registries)

    def hostport(self) -> tuple[str, int]:
        """The listen address split into host and port."""
        try:
            return parse_hostport(self.listen)
        except InvalidArgument as err:
            raise InvalidArgument(f"--mirror: {err} (or 'off')") from None

    def validate(self) -> MirrorConfig:
        """Check every field; InvalidArgument with one line on the first bad one."""
        self.hostport()
        validate_registry_url(self.registry)
        from mirror.allowlist import AllowList  # it builds on this module

        registries = self.registries()
        AllowList(registries.default, self.allowed_registries, registries.targets())
        for path in (self.registry_ca, *(path for _, path in self.upstream_cas)):
            if path is not None:
                check_ca_bundle(path)
        for name in ("connect_timeout_s", "read_timeout_s", "blob_open_timeout_s", "auth_cache_ttl_s"):
            if getattr(self, name) <= 0:
                raise InvalidArgument(f"mirror {name} must be positive, got {getattr(self, name)}")
        if self.token_expiry_margin_s < 0 or self.max_manifest_bytes <= 0 or self.max_upstream_connections <= 0:
            raise InvalidArgument("mirror token margin, manifest limit and connection count must be positive")
        return self


def check_ca_bundle(path: str) -> None:
    """InvalidArgument with one line unless path is a readable PEM bundle of CA certificates."""
    if not os.access(path, os.R_OK):
        raise InvalidArgument(f"--registry-ca {path!r} is not a readable file")
    try:
        ssl.create_default_context().load_verify_locations(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidArgument(f"--registry-ca {path!r} holds no usable CA certificate: {exc}") from None


def validate_registry_url(url: str) -> str:
    """An upstream registry base URL: http(s)://HOST[:PORT] with no path, query or credentials."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed [IPv6 literal
        raise InvalidArgument(f"invalid registry URL {url[:200]!r}: want http(s)://HOST[:PORT]") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(f"invalid registry URL {url!r}: want http(s)://HOST[:PORT]")
    if parts.username or parts.password:
        raise InvalidArgument("the registry URL must not carry credentials: clients send their own")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidArgument(f"invalid registry URL {url!r}: want no path or query, only http(s)://HOST[:PORT]")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InvalidArgument(f"invalid port in registry URL {url!r}") from None
    return url.rstrip("/")


def add_mirror_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --mirror, --registry, --registry-map, --allow-registry, --registry-ca, --insecure, --registry-insecure,
    --no-prefetch and --layers-at-once to a dfdaemon parser."""
    group = parser.add_argument_group("registry mirror")
    group.add_argument(
        "--mirror",
        metavar="ADDR",
        default=DEFAULT_LISTEN,
        help=f"serve the Docker Registry v2 mirror on HOST:PORT, or 'off' (default {DEFAULT_LISTEN})",
    )
    group.add_argument(
        "--registry",
        metavar="URL",
        default=DEFAULT_REGISTRY,
        help=f"default upstream registry, for requests that name none (default {DEFAULT_REGISTRY})",
    )
    group.add_argument(
        "--registry-map",
        metavar="NAME=URL",
        action=ReplacingAppend,
        default=[],
        help="send requests for registry NAME (?ns=NAME, X-Dandelion-Registry: NAME, or NAME/ before the repository "
        "name) to the upstream URL, e.g. docker.io=https://hub-proxy.internal:5000; a mapped docker.io is also the "
        "default when --registry is Docker Hub; repeatable or comma-separated",
    )
    group.add_argument(
        "--allow-registry",
        metavar="HOST[:PORT]",
        action=ReplacingAppend,
        default=[],
        help="another upstream clients may pick with ?ns=HOST (containerd) or the X-Dandelion-Registry header: "
        "HOST[:PORT] (http on loopback, else https), http(s)://HOST[:PORT], or 'any' for every registry; "
        "repeatable or comma-separated (default: only --registry, and Docker Hub's names when that is Docker Hub)",
    )
    group.add_argument(
        "--registry-ca",
        metavar="[HOST=]FILE",
        action=ReplacingAppend,
        default=[],
        help="extra CA bundle (PEM): FILE for every upstream, HOST[:PORT]=FILE (an upstream's host or a mapped NAME) "
        "for that upstream only; repeatable",
    )
    group.add_argument(
        "--insecure", action="store_true", help="do not verify any upstream's TLS certificate (tests only)"
    )
    group.add_argument(
        "--registry-insecure",
        metavar="HOST[:PORT]",
        action=ReplacingAppend,
        default=[],
        help="do not verify this upstream's TLS certificate (an upstream's host or a mapped NAME; tests only); "
        "repeatable or comma-separated",
    )
    group.add_argument(
        "--no-prefetch",
        action="store_true",
        help="do not have the supernode start loading an image's layers when the mirror serves its manifest",
    )
    group.add_argument(
        "--layers-at-once",
        action="store_true",
        help="download every layer a client asks for side by side (default: big layers that are not cached go "
        "one at a time in manifest order while the one running moves >= 50 MB/s, so docker unpacks each one "
        "while the next downloads)",
    )


def mirror_config_from_args(ns: argparse.Namespace) -> MirrorConfig | None:
    """The mirror configuration from parsed flags; None when --mirror off."""
    if str(ns.mirror).strip().lower() == OFF:
        return None
    from mirror.registries import split_ca_entries  # it builds on this module

    shared_ca, upstream_cas = split_ca_entries(registry_ca_entries(ns))
    return MirrorConfig(
        listen=str(ns.mirror).strip(),
        registry=validate_registry_url(str(ns.registry).strip()),
        registry_ca=shared_ca,
        insecure=bool(ns.insecure),
        registry_map=split_entries(getattr(ns, "registry_map", None) or []),
        upstream_cas=tuple(upstream_cas),
        insecure_registries=split_entries(getattr(ns, "registry_insecure", None) or []),
        prefetch_layers=not getattr(ns, "no_prefetch", False),
        ordered_layers=not getattr(ns, "layers_at_once", False),
        allowed_registries=split_entries(getattr(ns, "allow_registry", None) or []),
    ).validate()


def registry_ca_entries(ns: argparse.Namespace) -> list[str]:
    """The --registry-ca values as a list (a single FILE from an older caller's namespace too)."""
    value = getattr(ns, "registry_ca", None)
    if value is None:
        return []
    return [str(value)] if isinstance(value, str) else [str(item) for item in value]
