"""Mirror configuration: the dataclass, its command-line flags and their validation."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import ClassVar

from dfcommon.configfile import ReplacingAppend
from dfcommon.errors import InvalidArgument
from dfcommon.fetchpolicy import split_entries
from dfcommon.sizes import parse_hostport
from registryclient.config import DEFAULT_REGISTRY, ClientConfig, validate_registry_url
from registryclient.registries import split_ca_entries

DEFAULT_LISTEN = "127.0.0.1:65001"
OFF = "off"


@dataclass(frozen=True)
class MirrorConfig(ClientConfig):
    """Where the mirror listens, which registry it fronts and how patiently it talks to it."""

    # Loopback only by default: the mirror serves this host's container runtimes, not the network.
    listen: str = DEFAULT_LISTEN
    # The swarm answers open() once the origin (or a peer) has answered; a minute without that
    # means something is stuck, and a 504 lets the client retry or fall back.
    blob_open_timeout_s: float = 60.0
    # When an image manifest passes, have the swarm's seed start loading its layers (see mirror.prefetch).
    prefetch_layers: bool = True
    # Big layers that are not cached go into the swarm one at a time, in manifest order, while the one running is
    # fast (see mirror.admission): docker then unpacks each layer while the next one downloads.
    ordered_layers: bool = True

    _POSITIVE: ClassVar[tuple[str, ...]] = (
        "connect_timeout_s",
        "read_timeout_s",
        "blob_open_timeout_s",
        "auth_cache_ttl_s",
    )

    def hostport(self) -> tuple[str, int]:
        """The listen address split into host and port."""
        try:
            return parse_hostport(self.listen)
        except InvalidArgument as err:
            raise InvalidArgument(f"--mirror: {err} (or 'off')") from None

    def validate(self) -> MirrorConfig:
        """Check every field; InvalidArgument with one line on the first bad one."""
        self.hostport()
        super().validate()
        return self


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
        "name) to the upstream URL, e.g. docker.io=https://hub-proxy.internal:5000; a path in URL is a repository "
        "prefix there (a Harbor proxy-cache project: docker.io=https://harbor.internal/hub-cache); a mapped docker.io "
        "is also the default when --registry is Docker Hub; repeatable or comma-separated",
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
