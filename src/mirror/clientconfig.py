"""Client configuration for a node's mirror: dockerd's daemon.json, containerd's hosts.toml files, podman's
registries.conf, each pointing the runtime's pulls at the mirror for the registries it serves.

What each runtime can do decides what is written:
- docker: `registry-mirrors` applies to Docker Hub names only; images of other registries are pulled by the
  mirror's address (MIRROR/repo for the default upstream, MIRROR/NAME/repo for a mapped NAME).
- containerd: one hosts.toml per registry name (docker.io included); containerd tells the mirror which registry
  it means with ?ns=NAME, and falls back to the registry itself (`server`) when the mirror fails.
- podman (and skopeo, buildah): a [[registry]] per name with the mirror as [[registry.mirror]]; podman names no
  registry to a mirror, so a mapped NAME's mirror location carries it as a path (MIRROR/NAME), which the mirror
  reads as the first component of the repository name (registryclient.registries).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from dfcommon.tls import is_loopback_host
from registryclient.registries import HUB_NAME, RegistryMap
from registryclient.selection import DOCKER_HUB, is_docker_hub

RUNTIMES = ("docker", "containerd", "podman")
HEADER = "Written by `dfdaemon client-config`: pulls go through the Dandelion mirror at {mirror}."


@dataclass(frozen=True)
class ClientFile:
    """One configuration file: its path relative to the runtime's configuration directory, and its text."""

    path: str
    text: str


@dataclass(frozen=True)
class Routed:
    """How one registry name reaches its upstream through the mirror."""

    name: str
    # "mapped": a --registry-map NAME (MIRROR/NAME/repo works); "default": requests naming no registry go there;
    # "named": only requests that name it (?ns=, the header) reach it, if the mirror allows it.
    how: str


def _host_of(hostport: str) -> str:
    return urlsplit(f"//{hostport}").hostname or hostport


def default_name(registries: RegistryMap) -> str:
    """The registry name of the default upstream: docker.io for Docker Hub or a mapped docker.io, else HOST[:PORT]."""
    if is_docker_hub(registries.default) or registries.mapped.get(HUB_NAME) == registries.default:
        return HUB_NAME
    return urlsplit(registries.default).netloc.lower()


def route(name: str, registries: RegistryMap) -> Routed:
    """How the mirror reaches registry NAME (a mapped name is routed by its mapping even when it is also the default:
    that holds whatever the node's --registry is)."""
    if name in registries.mapped:
        return Routed(name, "mapped")
    if name == default_name(registries):
        return Routed(name, "default")
    return Routed(name, "named")


def server_url(name: str) -> str:
    """The registry itself, as containerd's fallback `server`: Hub's API host, http on loopback, else https."""
    if name == HUB_NAME:
        return DOCKER_HUB
    return f"{'http' if is_loopback_host(_host_of(name)) else 'https'}://{name}"


def docker_config(mirror: str, existing: dict[str, object] | None = None) -> ClientFile:
    """daemon.json with the mirror in registry-mirrors (kept first, other keys and mirrors of existing kept); a
    mirror beyond loopback speaks plain HTTP, so it is listed in insecure-registries too."""
    config = dict(existing or {})
    url = f"http://{mirror}"
    mirrors = [m for m in _strings(config.get("registry-mirrors")) if m.rstrip("/") != url]
    config["registry-mirrors"] = [url, *mirrors]
    if not is_loopback_host(_host_of(mirror)):
        insecure = _strings(config.get("insecure-registries"))
        config["insecure-registries"] = insecure if mirror in insecure else [*insecure, mirror]
    return ClientFile("daemon.json", json.dumps(config, indent=2) + "\n")


def _strings(value: object) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def containerd_config(mirror: str, names: Sequence[str]) -> list[ClientFile]:
    """NAME/hosts.toml for each registry name (the directory given to `ctr --hosts-dir` or containerd's
    config_path): the mirror first for pull and resolve, the registry itself as the fallback server."""
    files = []
    for name in names:
        text = (
            f"# {HEADER.format(mirror=mirror)}\n"
            f"# containerd adds ?ns={name} to each request, so the mirror knows which registry is meant.\n"
            f'server = "{server_url(name)}"\n\n'
            f'[host."http://{mirror}"]\n'
            '  capabilities = ["pull", "resolve"]\n'
        )
        files.append(ClientFile(f"{name}/hosts.toml", text))
    return files


def podman_config(mirror: str, routes: Sequence[Routed]) -> ClientFile:
    """registries.conf (version 2) with the mirror in front of each registry; a mapped name's mirror location
    carries the name as a path, since podman does not tell a mirror which registry it mirrors."""
    lines = [
        f"# {HEADER.format(mirror=mirror)}",
        "# Used by podman, skopeo and buildah (containers-registries.conf(5)); they fall back to the registry",
        "# itself when the mirror fails.",
        'unqualified-search-registries = ["docker.io"]',
    ]
    for routed in routes:
        location = mirror if routed.how == "default" else f"{mirror}/{routed.name}"
        lines += [
            "",
            "[[registry]]",
            f'prefix = "{routed.name}"',
            f'location = "{routed.name}"',
            *(["insecure = true"] if is_loopback_host(_host_of(routed.name)) else []),
            "",
            "[[registry.mirror]]",
            f'location = "{location}"',
            "insecure = true  # the mirror speaks plain HTTP",
        ]
    return ClientFile("registries.conf", "\n".join(lines) + "\n")


def notes(runtime: str, mirror: str, routes: Sequence[Routed], registries: RegistryMap) -> list[str]:
    """What the operator should know about names this runtime cannot route as asked (one line each)."""
    found = []
    if runtime == "docker" and default_name(registries) != HUB_NAME:
        # registry-mirrors requests name no registry: they go to the default upstream, whatever docker.io maps to.
        found.append(
            f"docker sends Docker Hub names to the dfdaemon's default upstream {registries.default}"
            + (
                f", not to docker.io's {registries.mapped[HUB_NAME]}: leave --registry at Docker Hub for that"
                if HUB_NAME in registries.mapped
                else ""
            )
        )
    for routed in routes:
        if runtime == "docker" and routed.name != HUB_NAME:
            pull_as = mirror if routed.how == "default" else f"{mirror}/{routed.name}"
            found.append(
                f"docker mirrors Docker Hub names only: pull {routed.name} images as {pull_as}/REPO:TAG"
                + (" (map it on the dfdaemon with --registry-map first)" if routed.how == "named" else "")
            )
        if runtime == "podman" and routed.how == "named":
            found.append(
                f"podman names no registry to a mirror: map {routed.name} on the dfdaemon "
                f"(--registry-map {routed.name}=URL) so that {mirror}/{routed.name}/REPO reaches it"
            )
    return found
