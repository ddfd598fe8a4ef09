"""The dfdaemon's command line: its flags, and the peer's and the mirror's configuration built from them."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from dfcommon.advertise import choose_advertise_ip
from dfcommon.errors import InvalidArgument
from dfcommon.fetchpolicy import add_origin_policy_arguments, split_entries
from dfcommon.logs import add_logging_flags
from dfcommon.sizes import hostport, parse_hostport, parse_ip, parse_size
from dfcommon.tls import add_tls_arguments, tls_from_args
from dfcommon.version import add_version_flag
from mirror.config import MirrorConfig, add_mirror_arguments, mirror_config_from_args, registry_ca_entries
from peer.config import DEFAULT_PORT, PeerConfig, parse_duration, parse_supernodes
from peer.membership import dial_target
from peer.origin import OriginTls, tls_verification
from peer.paths import default_daemon_endpoint
from registryclient.allowlist import origin_of
from registryclient.registries import RegistryMap, split_ca_entries

EXAMPLES = """examples:
  dfdaemon --supernode 10.0.0.5:8002 --listen 10.0.0.7 --data-dir /var/lib/dandelion
  dfdaemon --supernode dns:///supernodes.internal:8002 --listen 10.0.0.7 --data-dir /var/lib/dandelion
  dfdaemon --supernode sn1:8002,sn2:8002 --listen 127.0.0.2 --port 0 --data-dir /tmp/p2 \\
           --daemon-listen unix:/tmp/p2/dfdaemon.sock --upload-limit 50M --mirror off
  dfdaemon --supernode 10.0.0.5:8002 --listen 10.0.0.7 --data-dir /var/lib/dandelion \\
           --registry https://registry.example.com --metrics 127.0.0.1:65003
  dfdaemon --config /etc/dandelion/dfdaemon.yaml    # supernode: 10.0.0.5:8002, listen: 10.0.0.7, ...
  dfdaemon --supernode 10.0.0.5:8002 --listen 10.0.0.7 --data-dir /var/lib/dandelion \
           --tls-cert node.pem --tls-key node-key.pem --tls-ca ca.pem     # mutual TLS (docs/security.md)
  dfget https://example.com/big.iso -o big.iso      # then downloads go through this daemon
  dfdaemon ... --listen 10.0.0.7 --origin-allow 127.0.0.1:8080 --origin-deny '*:9100'   # fetch policy

Client configuration for this node's mirror: `dfdaemon client-config --runtime docker|containerd|podman`.
Private registry: start with --registry URL, then `docker login 127.0.0.1:65001` with the registry's own
user and password and `docker pull 127.0.0.1:65001/ns/img:tag`. Credentials pass through, never stored.
"""


def build_parser() -> argparse.ArgumentParser:
    """The dfdaemon command line."""
    parser = argparse.ArgumentParser(
        prog="dfdaemon",
        description="Dandelion peer daemon: downloads through the swarm, serves pieces to other peers, "
        "serves dfget on a local socket and hosts the registry mirror. Options also come from a config file "
        "(--config, TOML or YAML, keys = flag names) and DFDAEMON_<FLAG> environment variables; flags win over "
        "the environment, which wins over the file.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version_flag(parser)
    parser.add_argument(
        "--supernode",
        required=True,
        help="supernode HOST:PORT, several separated by commas; dns:///NAME:PORT: every address NAME resolves to "
        "(a headless Service), looked up again every 30s. Give every host the same list: tasks are spread over "
        "the supernodes by rendezvous hashing on the task id",
    )
    parser.add_argument(
        "--listen", required=True, help="IP address of this host's PeerService (0.0.0.0: every address)"
    )
    parser.add_argument(
        "--advertise-ip",
        default="",
        help="IP other peers reach this host at when --listen is 0.0.0.0 (default: the source address of the "
        "route to the first supernode, else of the default route)",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="PeerService port (default %(default)s)")
    parser.add_argument("--data-dir", type=Path, required=True, help="cache directory")
    parser.add_argument(
        "--daemon-listen",
        default=None,
        help=f"local endpoint for dfget, unix:PATH or HOST:PORT (default {default_daemon_endpoint()})",
    )
    parser.add_argument(
        "--upload-limit", default="1GiB", help="bytes/s served to peers, e.g. 100M (0: none; default %(default)s)"
    )
    parser.add_argument("--download-limit", default="0", help="bytes/s fetched, e.g. 100M (0: unlimited)")
    parser.add_argument("--upload-slots", type=int, default=8, help="concurrent piece uploads (default 8)")
    parser.add_argument("--no-back-source", action="store_true", help="never fetch from the origin directly")
    parser.add_argument(
        "--seed",
        action="store_true",
        help="run as a seed peer, the cluster's cache: the supernode has it read content from the origin for the "
        "swarm (tasks spread over the seed peers by hashing) and chooses it as a parent after other peers; with TLS "
        "its certificate needs a seed common name (the supernode's --seed-cn)",
    )
    parser.add_argument("--cache-ttl", default="6h", help="drop cached content unused this long (default 6h)")
    parser.add_argument("--cache-quota", default="20GiB", help="cache size before LRU eviction (default 20GiB)")
    parser.add_argument(
        "--location",
        default="",
        help='where this host is, "region|zone|rack": the supernode prefers parents near it, and with --parent-policy '
        "nearest takes a piece from another zone only when nobody in this zone has it",
    )
    add_logging_flags(parser)
    parser.add_argument("--metrics", default="", help="serve Prometheus /metrics on HOST:PORT (default: off)")
    parser.add_argument(
        "--open-inspection",
        action="store_true",
        help="answer ListCache on a TCP --daemon-listen from any address (default: loopback callers only)",
    )
    parser.add_argument(
        "--access-public-ttl",
        default="10m",
        help="a URL the origin serves without credentials is handed to local callers from the cache or the swarm "
        "without asking the origin again for this long (0: ask every time; default %(default)s; docs/security.md)",
    )
    parser.add_argument(
        "--access-grant-ttl",
        default="1m",
        help="a local caller the origin let read a URL is not asked about again for this long, per URL and "
        "headers (0: ask every time; default %(default)s)",
    )
    parser.add_argument(
        "--no-access-check",
        action="store_true",
        help="hand local callers cached and swarm content without asking the origin whether it lets them read the "
        "URL (only for hosts that cannot reach origins and whose local users may all read everything)",
    )
    parser.add_argument(
        "--no-require-grants",
        action="store_true",
        help="serve pieces to callers without a supernode's access grant (only while older peers, which send none, "
        "are still in the cluster; default: refuse them)",
    )
    add_mirror_arguments(parser)
    add_origin_policy_arguments(parser, "back-to-source")
    add_tls_arguments(parser, "PeerService and the calls to supernodes and parents (not the dfget endpoint)")
    return parser


def config_from_args(ns: argparse.Namespace) -> PeerConfig:
    """PeerConfig from parsed flags (InvalidArgument on bad values)."""
    shared_ca, _ = split_ca_entries(registry_ca_entries(ns))
    tls_verification(shared_ca, ns.insecure)  # fail early
    registries = _registries(ns)
    supernodes = parse_supernodes(ns.supernode)
    listen_ip = parse_ip(ns.listen)
    return PeerConfig(
        supernodes=supernodes,
        listen_ip=listen_ip,
        advertise_ip=choose_advertise_ip(
            listen_ip, parse_ip(ns.advertise_ip) if ns.advertise_ip else "", [dial_target(e) for e in supernodes]
        ),
        data_dir=ns.data_dir,
        port=ns.port,
        daemon_listen=ns.daemon_listen or default_daemon_endpoint(),
        upload_limit=parse_size(ns.upload_limit),
        download_limit=parse_size(ns.download_limit),
        upload_slots=ns.upload_slots,
        no_back_source=ns.no_back_source,
        seed=ns.seed,
        cache_ttl=parse_duration(ns.cache_ttl),
        cache_quota=parse_size(ns.cache_quota),
        location=ns.location,
        daemon_listen_is_default=ns.daemon_listen is None,
        origin_ca_file=shared_ca,
        origin_insecure=ns.insecure,
        origin_tls=_origin_tls(registries),
        origin_allow=(*_registry_entries(registries), *split_entries(ns.origin_allow)),
        origin_deny=split_entries(ns.origin_deny),
        listeners=_listeners(ns),
        tls=tls_from_args(ns),
        open_inspection=ns.open_inspection,
        access_public_ttl=parse_duration(ns.access_public_ttl),
        access_grant_ttl=parse_duration(ns.access_grant_ttl),
        access_check=not ns.no_access_check,
        require_grants=not ns.no_require_grants,
    ).validate()


def _registries(ns: argparse.Namespace) -> RegistryMap | None:
    """The mirror's upstreams (None with --mirror off, or flags the mirror reports with their names)."""
    if str(ns.mirror).strip().lower() == "off":
        return None
    try:
        config = mirror_config_from_args(ns)
    except InvalidArgument:
        return None  # reported with the flag's name where the mirror reads it
    return config.registries() if config is not None else None


def _registry_entries(registries: RegistryMap | None) -> tuple[str, ...]:
    """The mirror's upstreams (--registry and the --registry-map targets) as allow entries HOST:PORT: registries the
    operator chose are fetched from even where the policy would refuse them (a registry on this host's loopback
    while the dfdaemon listens beyond loopback)."""
    if registries is None:
        return ()
    entries = []
    for base in sorted(registries.targets()):
        origin = origin_of(base)
        entries.append(hostport(origin.host, origin.port))
    return tuple(entries)


def _origin_tls(registries: RegistryMap | None) -> tuple[OriginTls, ...]:
    """The mirror's per-upstream TLS settings for the peer's own fetches from those upstreams."""
    if registries is None:
        return ()
    return tuple(
        OriginTls(origin.host, origin.port, tls.ca_file, tls.insecure)
        for origin, tls in registries.tls.items()
        if origin.scheme == "https"
    )


def _listeners(ns: argparse.Namespace) -> tuple[tuple[str, int, str], ...]:
    """The mirror's and the metrics' addresses: refused as origins, and whether this host listens beyond loopback."""
    found = []
    for text, what in ((str(ns.mirror), "mirror"), (str(ns.metrics), "metrics")):
        if text.strip() and text.strip().lower() != "off":
            with contextlib.suppress(InvalidArgument):  # reported with the flag's name where it is read
                found.append((*parse_hostport(text), what))
    return tuple(found)


def mirror_config(ns: argparse.Namespace) -> MirrorConfig | None:
    """The mirror's configuration from flags; None with --mirror off."""
    return mirror_config_from_args(ns)
