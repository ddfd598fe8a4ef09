"""The registry client's configuration: which upstreams, their TLS, and how patiently to talk to them."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import urlsplit

from dfcommon.errors import InvalidArgument

if TYPE_CHECKING:
    from registryclient.registries import RegistryMap

DEFAULT_REGISTRY = "https://registry-1.docker.io"


@dataclass(frozen=True)
class ClientConfig:
    """Which registry the client talks to by default, which others it may, and how patiently."""

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
    # How long an upstream "yes, this client may read this blob" is reused: short, so revoked access
    # stops within a minute, long enough that the layers of one pull cost one check each.
    auth_cache_ttl_s: float = 60.0
    # Tokens are renewed this long before they expire so none runs out between check and use.
    token_expiry_margin_s: float = 10.0
    # distribution refuses manifests over 4 MiB, so a bigger answer is not a manifest.
    max_manifest_bytes: int = 4 * 1024 * 1024
    # Upstream connections kept open across requests (a pull asks for a handful at once).
    max_upstream_connections: int = 32
    # Upstreams besides `registry` that a client may pick with ?ns= or X-Dandelion-Registry (HOST[:PORT],
    # http(s)://HOST[:PORT], or "any"). None by default: the mirror trusts the upstream a request names to say
    # whether the client may read a cached blob, so a registry the client chooses could vouch for any private layer
    # (see registryclient.allowlist).
    allowed_registries: tuple[str, ...] = ()
    # NAME=URL: requests naming registry NAME (?ns=, X-Dandelion-Registry, or NAME/ before the repository name) go to
    # URL instead (docker.io to a Hub proxy, anything to an air-gapped registry); see registryclient.registries.
    registry_map: tuple[str, ...] = ()
    # (HOST[:PORT] of an upstream or a mapped NAME, PEM bundle) trusted for that upstream only, besides registry_ca.
    upstream_cas: tuple[tuple[str, str], ...] = ()
    # Upstreams (HOST[:PORT] or mapped NAME) whose TLS certificate is not verified (test registries only).
    insecure_registries: tuple[str, ...] = ()

    # Timeouts and cache lifetimes that must be positive (a subclass may add its own).
    _POSITIVE: ClassVar[tuple[str, ...]] = ("connect_timeout_s", "read_timeout_s", "auth_cache_ttl_s")

    def registries(self) -> RegistryMap:
        """The default upstream, the name mapping and each upstream's TLS settings (InvalidArgument if bad)."""
        from registryclient.registries import build_registry_map  # it builds on this module

        return build_registry_map(self.registry, self.registry_map, self.upstream_cas, self.insecure_registries)

    def validate(self) -> ClientConfig:
        """Check every field; InvalidArgument with one line on the first bad one."""
        validate_registry_url(self.registry)
        from registryclient.allowlist import AllowList  # it builds on this module

        registries = self.registries()
        AllowList(registries.default, self.allowed_registries, registries.targets())
        for path in (self.registry_ca, *(path for _, path in self.upstream_cas)):
            if path is not None:
                check_ca_bundle(path)
        for name in self._POSITIVE:
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
