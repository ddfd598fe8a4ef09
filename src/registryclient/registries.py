"""The mirror's upstreams: which registry each namespace goes to, and how each one's TLS is verified.

A client names the registry an image comes from (containerd's ?ns=HOST, the X-Dandelion-Registry header, or the first
path component of the repository name); --registry-map NAME=URL sends that name to another registry (docker.io to an
internal Hub proxy, ghcr.io to Harbor, anything to an air-gapped registry). Requests that name nothing go to the
default upstream (--registry); when that is Docker Hub and docker.io is mapped, they follow the mapping, so docker's
registry-mirrors and containerd's ?ns=docker.io end up at the same place.

A target URL may carry a path: a repository prefix at that upstream. A Harbor proxy-cache project serves its remote's
images under the project's name, so --registry-map docker.io=https://harbor.internal/hub-cache sends library/alpine
there as hub-cache/library/alpine (tag-list links come back with the client's name).

Each upstream may have its own CA bundle (--registry-ca HOST=FILE) and may skip verification (--registry-insecure
HOST); a bare --registry-ca FILE and --insecure apply to every upstream, as they always did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from dfcommon.errors import InvalidArgument
from registryclient.allowlist import Origin, origin_of
from registryclient.config import validate_registry_url
from registryclient.errors import RegistryError
from registryclient.names import validate_name
from registryclient.selection import DOCKER_HUB, DOCKER_HUB_HOSTS, REGISTRY_HEADER, is_docker_hub, upstream_for_host

HUB_NAME = "docker.io"
MAP_FLAG = "--registry-map"
CA_FLAG = "--registry-ca"
INSECURE_FLAG = "--registry-insecure"
_MAX_SHOWN = 200


def registry_name(text: str) -> str:
    """A registry name as clients write it (HOST[:PORT]), lower case; Docker Hub's aliases become docker.io."""
    value = text.strip().lower().rstrip(".")
    if not value or any(c in value for c in "/?#@=\\") or any(c.isspace() for c in value) or not value.isascii():
        raise InvalidArgument(f"invalid registry name {text[:_MAX_SHOWN]!r}: want HOST[:PORT] as in an image name")
    try:
        parts = urlsplit(f"//{value}")
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InvalidArgument(f"invalid registry name {text[:_MAX_SHOWN]!r}: bad port") from None
    if not parts.hostname:
        raise InvalidArgument(f"invalid registry name {text[:_MAX_SHOWN]!r}: want HOST[:PORT]")
    return HUB_NAME if parts.hostname in DOCKER_HUB_HOSTS and parts.port in (None, 443) else value


def parse_mapping(entry: str) -> tuple[str, str, str]:
    """NAME=URL[/PREFIX]: (normalised name, canonical upstream base URL, repository prefix there or "")."""
    name, sep, url = entry.partition("=")
    if not sep or not name.strip() or not url.strip():
        raise InvalidArgument(f"{MAP_FLAG} {entry[:_MAX_SHOWN]!r}: want NAME=URL, e.g. docker.io=https://hub.internal")
    try:
        base, prefix = _split_target(url.strip())
        return registry_name(name), origin_of(base).url, prefix
    except InvalidArgument as exc:
        raise InvalidArgument(f"{MAP_FLAG} {entry[:_MAX_SHOWN]!r}: {exc}") from None


def _split_target(url: str) -> tuple[str, str]:
    """A map target http(s)://HOST[:PORT][/PREFIX]: (the URL without its path, the prefix as a repository name)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed [IPv6 literal
        raise InvalidArgument(f"invalid registry URL {url[:_MAX_SHOWN]!r}: want http(s)://HOST[:PORT]") from None
    prefix = parts.path.strip("/")
    if prefix == "v2" or prefix.startswith("v2/"):
        raise InvalidArgument("want the registry's root, not its /v2/ API path (a path is a repository prefix)")
    if prefix:
        try:
            validate_name(prefix)
        except RegistryError:
            raise InvalidArgument(
                f"path {prefix[:_MAX_SHOWN]!r} is no repository prefix (lower-case name components, e.g. a Harbor "
                "project)"
            ) from None
    return urlunsplit((parts.scheme, parts.netloc, "", parts.query, parts.fragment)), prefix


@dataclass(frozen=True)
class UpstreamTls:
    """How one upstream's certificate is checked: an extra CA bundle, or no check at all."""

    ca_file: str | None = None
    insecure: bool = False


@dataclass(frozen=True)
class RegistryMap:
    """Names to upstream base URLs (and repository prefixes there), the default upstream, each upstream's TLS."""

    # The upstream of requests that name no registry (--registry, or docker.io's target when that is Docker Hub).
    default: str
    # Registry name (HOST[:PORT], docker.io for Docker Hub) → canonical base URL of its upstream.
    mapped: Mapping[str, str] = field(default_factory=dict)
    # Upstream origin → its own TLS settings; upstreams not listed use the mirror-wide ones.
    tls: Mapping[Origin, UpstreamTls] = field(default_factory=dict)
    # Registry name → repository prefix at its upstream (a Harbor proxy-cache project), for targets with a path.
    prefixes: Mapping[str, str] = field(default_factory=dict)
    # The default's prefix: docker.io's when the default is Docker Hub and docker.io is mapped to a project.
    default_prefix: str = ""

    def targets(self) -> frozenset[str]:
        """Every configured upstream base URL: the default and the mapped ones (all allowed)."""
        return frozenset({self.default, *self.mapped.values()})

    def named_prefix(self, name: str) -> tuple[str, str] | None:
        """(mapped registry name, rest of the name) when the first component of a repository name is a mapped
        registry name (podman mirrors and `docker pull MIRROR/ghcr.io/org/img`); None otherwise."""
        first, sep, rest = name.partition("/")
        if not sep or not rest:
            return None
        try:
            key = registry_name(first)
        except InvalidArgument:
            return None
        return (key, rest) if key in self.mapped else None

    def select(self, ns: str | None, header: str | None, name: str) -> tuple[str, str]:
        """(upstream base URL, repository name there) of a request: the header (a URL or HOST[:PORT]) wins over
        ?ns=HOST, which wins over a mapped NAME/ in front of the repository name; else the default upstream.

        What is returned is only a candidate: registryclient.allowlist decides whether the mirror may use it."""
        if header and header.strip():
            text = header.strip()
            if "://" not in text:
                return self._by_name(text, name)
            try:
                base = validate_registry_url(text)
            except InvalidArgument as exc:
                raise RegistryError(400, "UNSUPPORTED", f"{REGISTRY_HEADER}: {exc}") from None
            return base, _remote(name, "", self.hub_like(base))
        if ns:
            return self._by_name(ns, name)
        named = self.named_prefix(name)
        if named is not None:
            return self._mapped(*named)
        return self.default, _remote(
            name, self.default_prefix, bool(self.default_prefix) or self.hub_like(self.default)
        )

    def _by_name(self, text: str, name: str) -> tuple[str, str]:
        """A registry named HOST[:PORT]: its mapping, else today's rule (Docker Hub's API host for Hub names, the
        default for its own host name, http on loopback, https elsewhere)."""
        try:
            key = registry_name(text)
        except InvalidArgument as exc:
            raise RegistryError(400, "UNSUPPORTED", f"upstream registry: {exc}") from None
        if key in self.mapped:
            return self._mapped(key, name)
        base = upstream_for_host(text, self.default)
        return base, _remote(name, "", self.hub_like(base))

    def _mapped(self, key: str, name: str) -> tuple[str, str]:
        base, prefix = self.mapped[key], self.prefixes.get(key, "")
        # A project of docker.io's names serves Hub's names; a target root serves whatever its base serves.
        return base, _remote(name, prefix, key == HUB_NAME if prefix else self.hub_like(base))

    def hub_like(self, base: str) -> bool:
        """Whether base itself serves Docker Hub's names (Hub, or docker.io's target when that has no prefix):
        official images live under library/ there."""
        return is_docker_hub(base) or (self.mapped.get(HUB_NAME) == base and HUB_NAME not in self.prefixes)

    def tls_for(self, base: str) -> UpstreamTls | None:
        """The upstream's own TLS settings, or None for the mirror-wide ones."""
        return self.tls.get(origin_of(base))

    def describe(self) -> str:
        """The mapping for a log line."""
        pairs = ", ".join(
            f"{name} -> {url}" + (f"/{self.prefixes[name]}" if name in self.prefixes else "")
            for name, url in sorted(self.mapped.items())
        )
        default = self.default + (f"/{self.default_prefix}" if self.default_prefix else "")
        return f"default {default}" + (f"; {pairs}" if pairs else "")


def _remote(name: str, prefix: str, hub_names: bool) -> str:
    """The repository name at the upstream: library/ for Hub's one-part names, under the target's prefix."""
    name = f"library/{name}" if hub_names and "/" not in name else name
    return f"{prefix}/{name}" if prefix else name


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _tls_key(key: str, mapped: Mapping[str, str], known: Sequence[Origin], flag: str) -> Origin:
    """The upstream a per-upstream TLS setting is for: a mapped name, or the HOST[:PORT] of a configured upstream."""
    try:
        name = registry_name(key)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{flag} {key[:_MAX_SHOWN]!r}: {exc}") from None
    if name in mapped:
        return origin_of(mapped[name])
    exact = [o for o in known if name == f"{_bracketed(o.host)}:{o.port}"]
    by_host = list(dict.fromkeys(o for o in known if name == _bracketed(o.host)))
    if exact or len(by_host) == 1:
        return (exact or by_host)[0]
    if by_host:
        raise InvalidArgument(f"{flag} {key[:_MAX_SHOWN]!r}: several upstreams have that host; add the port")
    names = ", ".join(sorted({*mapped, *(o.url for o in known)}))
    raise InvalidArgument(f"{flag} {key[:_MAX_SHOWN]!r} names no upstream of this mirror (upstreams: {names})")


def split_ca_entries(entries: Sequence[str]) -> tuple[str | None, list[tuple[str, str]]]:
    """--registry-ca values: (the one bare FILE trusted for every upstream, [(HOST, FILE) for one upstream each]).

    HOST=FILE is told from a bare FILE by the part before '=' holding no '/' (a path would)."""
    shared: str | None = None
    scoped: list[tuple[str, str]] = []
    for entry in entries:
        key, sep, path = entry.partition("=")
        if sep and key.strip() and "/" not in key:
            if not path.strip():
                raise InvalidArgument(f"{CA_FLAG} {entry[:_MAX_SHOWN]!r}: want HOST=FILE")
            scoped.append((key.strip(), path.strip()))
        elif shared is not None and shared != entry:
            raise InvalidArgument(f"{CA_FLAG}: one bundle for every upstream at most ({shared!r} and {entry!r})")
        else:
            shared = entry.strip()
    return shared, scoped


def build_registry_map(
    registry: str,
    mappings: Sequence[str] = (),
    ca_entries: Sequence[tuple[str, str]] = (),
    insecure_entries: Sequence[str] = (),
) -> RegistryMap:
    """The RegistryMap of the flags; InvalidArgument with one line on the first bad entry."""
    mapped: dict[str, str] = {}
    prefixes: dict[str, str] = {}
    for entry in mappings:
        name, url, prefix = parse_mapping(entry)
        if name in mapped and (mapped[name], prefixes.get(name, "")) != (url, prefix):
            was = mapped[name] + (f"/{prefixes[name]}" if name in prefixes else "")
            raise InvalidArgument(
                f"{MAP_FLAG}: {name} is mapped twice ({was} and {url}{'/' if prefix else ''}{prefix})"
            )
        mapped[name] = url
        if prefix:
            prefixes[name] = prefix
    default, default_prefix = origin_of(registry).url, ""
    if is_docker_hub(default) and HUB_NAME in mapped:
        default, default_prefix = mapped[HUB_NAME], prefixes.get(HUB_NAME, "")
    known = [origin_of(default), *(origin_of(url) for url in mapped.values()), origin_of(DOCKER_HUB)]
    tls: dict[Origin, UpstreamTls] = {}
    for key, path in ca_entries:
        origin = _tls_key(key, mapped, known, CA_FLAG)
        tls[origin] = UpstreamTls(path, tls.get(origin, UpstreamTls()).insecure)
    for key in insecure_entries:
        origin = _tls_key(key, mapped, known, INSECURE_FLAG)
        tls[origin] = UpstreamTls(tls.get(origin, UpstreamTls()).ca_file, True)
    return RegistryMap(default, mapped, tls, prefixes, default_prefix)
