"""Which upstream registry a request is for: containerd's ?ns=, a request header, or the default.

What is named here is only a candidate: registryclient.allowlist decides whether the mirror may use it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from dfcommon.errors import InvalidArgument
from dfcommon.tls import is_loopback_host
from registryclient.config import validate_registry_url
from registryclient.errors import RegistryError

REGISTRY_HEADER = "X-Dandelion-Registry"
DOCKER_HUB = "https://registry-1.docker.io"
# Names under which Docker Hub is known; ns=docker.io is what containerd sends for Hub images.
DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})


def upstream_for_host(hostport: str, default: str) -> str:
    """The base URL of a registry named HOST[:PORT].

    The default registry keeps its own scheme; Docker Hub's aliases map to its API host; loopback
    registries speak plain HTTP (docker and containerd treat 127.0.0.0/8 as insecure too); others HTTPS.
    """
    value = hostport.strip().lower()
    if not value or any(c in value for c in "/?#@ \\"):
        raise RegistryError(400, "UNSUPPORTED", f"invalid upstream registry host {value[:80]!r}: want HOST[:PORT]")
    if value in DOCKER_HUB_HOSTS:
        return DOCKER_HUB
    default_parts = urlsplit(default)
    if value == default_parts.netloc.lower() or value == (default_parts.hostname or "").lower():
        return default
    try:
        host = urlsplit(f"//{value}").hostname or value
    except ValueError:  # e.g. an unclosed [IPv6 literal
        raise RegistryError(400, "UNSUPPORTED", f"invalid upstream registry host {value[:80]!r}") from None
    scheme = "http" if is_loopback_host(host) else "https"
    try:
        return validate_registry_url(f"{scheme}://{value}")
    except InvalidArgument as exc:
        raise RegistryError(400, "UNSUPPORTED", str(exc)) from None


def select_upstream(default: str, ns: str | None, header: str | None) -> str:
    """The upstream base URL: the header (a URL or HOST[:PORT]) wins over ?ns=HOST, else the default."""
    if header:
        header = header.strip()
        if "://" in header:
            try:
                return validate_registry_url(header)
            except InvalidArgument as exc:
                raise RegistryError(400, "UNSUPPORTED", f"{REGISTRY_HEADER}: {exc}") from None
        return upstream_for_host(header, default)
    if ns:
        return upstream_for_host(ns, default)
    return default


def is_docker_hub(base: str) -> bool:
    """Whether base is Docker Hub's registry API."""
    return (urlsplit(base).hostname or "") in DOCKER_HUB_HOSTS


def upstream_name(base: str, name: str) -> str:
    """The repository name as the upstream knows it: Docker Hub's official images live under library/."""
    if is_docker_hub(base) and "/" not in name:
        return f"library/{name}"
    return name
