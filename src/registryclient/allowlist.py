"""Which upstream registries a client may make the mirror use: the allow-list behind ?ns= and X-Dandelion-Registry.

The mirror asks the upstream a request names whether the client may read a blob, then serves the bytes from the
swarm's cache. An upstream the client picks freely would vouch for anything (a server that answers every HEAD with
200 unlocks every private layer this host holds) and would make the mirror connect wherever the client says. So only
the configured registry (and Docker Hub's API host when that is Docker Hub) may be selected by default; others are
listed with --allow-registry (the targets of --registry-map count as listed), and 'any' is the explicit opt-in to the
open behaviour.

Entries and requested upstreams are compared as normalised origins (scheme, host, port): lower case, no trailing
dot, IP literals in canonical form, default ports filled in; anything with credentials, paths, whitespace, control
or non-ASCII characters is no origin at all. The mirror then talks to the origin's canonical URL, so what was
checked is what is connected to.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from dfcommon.errors import InvalidArgument
from registryclient.config import validate_registry_url
from registryclient.errors import RegistryError
from registryclient.selection import DOCKER_HUB, is_docker_hub, upstream_for_host

ANY = "any"
FLAG = "--allow-registry"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_MAX_SHOWN = 200


@dataclass(frozen=True)
class Origin:
    """A registry's normalised scheme, host and port: what the allow-list compares."""

    scheme: str
    host: str
    port: int

    @property
    def url(self) -> str:
        """The canonical base URL: IPv6 in brackets, the scheme's default port left out."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}" + ("" if self.port == _DEFAULT_PORTS[self.scheme] else f":{self.port}")


def _normal_host(host: str) -> str:
    """A lower-case DNS name without its trailing dot, or an IP address in canonical form."""
    name = host[:-1] if host.endswith(".") else host
    try:
        return ipaddress.ip_address(name).compressed
    except ValueError:
        pass
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise InvalidArgument(f"invalid registry host {host[:_MAX_SHOWN]!r}: want a DNS name or an IP address")
    return name


def origin_of(url: str) -> Origin:
    """The origin of an http(s)://HOST[:PORT] base URL; InvalidArgument for anything else."""
    if not url.isascii() or any(c.isspace() or not c.isprintable() for c in url):
        raise InvalidArgument(
            f"invalid registry URL {url[:_MAX_SHOWN]!r}: whitespace, control or non-ASCII characters "
            "(use the xn-- form of international names)"
        )
    validate_registry_url(url)
    parts = urlsplit(url)
    host = _normal_host(parts.hostname or "")
    return Origin(parts.scheme, host, parts.port or _DEFAULT_PORTS[parts.scheme])


def parse_entry(entry: str, registry: str) -> Origin | None:
    """One allow-list entry: 'any' (None), http(s)://HOST[:PORT], or HOST[:PORT] with the scheme ?ns= would get."""
    text = entry.strip()
    if text.lower() == ANY:
        return None
    if "://" in text:
        return origin_of(text)
    try:
        return origin_of(upstream_for_host(text, registry))
    except RegistryError as exc:
        raise InvalidArgument(f"{FLAG} {text[:_MAX_SHOWN]!r}: {exc.message}") from None


class AllowList:
    """The upstreams a request may select; any other is refused before the mirror contacts it or serves a byte."""

    def __init__(self, registry: str, entries: Sequence[str] = (), targets: Iterable[str] = ()) -> None:
        """registry: the default upstream; entries: --allow-registry; targets: the --registry-map upstreams (the
        operator chose them, so they are allowed like the default)."""
        self.any = False
        origins = {origin_of(registry), *(origin_of(target) for target in targets)}
        if is_docker_hub(registry):  # ?ns=docker.io and the other Hub names map to the API host
            origins.add(origin_of(DOCKER_HUB))
        for entry in entries:
            origin = parse_entry(entry, registry)
            if origin is None:
                self.any = True
            else:
                origins.add(origin)
        self.origins = frozenset(origins)

    def admit(self, base: str) -> str:
        """The canonical base URL of an allowed upstream; RegistryError 403 DENIED (400 if malformed) otherwise."""
        try:
            origin = origin_of(base)
        except InvalidArgument as exc:
            raise RegistryError(400, "UNSUPPORTED", f"upstream registry: {exc}") from None
        if not self.any and origin not in self.origins:
            raise RegistryError(
                403,
                "DENIED",
                f"upstream registry {origin.url} is not allowed on this mirror; to allow it, start the dfdaemon "
                f"with {FLAG} {origin.url}",
                {"upstream": origin.url},
            )
        return origin.url

    def describe(self) -> str:
        """The allowed upstreams for a log line."""
        return "any" if self.any else ", ".join(sorted(origin.url for origin in self.origins))
