"""dfdaemon configuration: one dataclass, validated once, equal to the flags."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from dfcommon.errors import InvalidArgument
from dfcommon.fetchpolicy import ALLOW_FLAG, DENY_FLAG, FetchPolicy, parse_rules
from dfcommon.location import check_location
from dfcommon.origin_access import GRANT_TTL_S, PUBLIC_TTL_S
from dfcommon.sizes import parse_duration, parse_hostport, parse_ip, parse_size
from dfcommon.tls import TlsConfig
from peer.membership import dial_target, parse_supernodes
from peer.origin import OriginTls
from peer.paths import validate_endpoint

DEFAULT_PORT = 65000
DEFAULT_UPLOAD_LIMIT = 1 << 30  # bytes/s (see PeerConfig.upload_limit)


@dataclass
class PeerConfig:
    """Everything a peer needs; defaults suit one dfdaemon per host."""

    supernodes: list[str]
    listen_ip: str
    data_dir: Path
    advertise_ip: str = ""  # what other peers are told to reach; empty: listen_ip
    port: int = DEFAULT_PORT  # 0 picks a free port (embedded one-shot peers)
    daemon_listen: str | None = None  # None: no DaemonService (embedded dfget peer)
    # bytes/s served to other peers. Like Dragonfly's 1024Mi default, the limit protects the host from being
    # drained by the swarm, not the link: 100 MB/s capped a peer-to-peer transfer at a tenth of loopback speed.
    upload_limit: int = DEFAULT_UPLOAD_LIMIT
    download_limit: int = 0  # bytes/s fetched by this host; 0 unlimited
    upload_slots: int = 8  # concurrent DownloadPieces calls served
    no_back_source: bool = False
    seed: bool = False  # a seed peer (HostInfo.seed): takes the supernode's orders to read content for the swarm
    component: str = "dfdaemon"  # the metrics' component label: "supernode" for its in-process seed peer
    cache_ttl: float = 6 * 3600.0  # seconds a cached task may stay unused
    cache_quota: int = 20 * 1024**3  # bytes of cache before LRU eviction
    window: int = 16
    location: str = ""
    origin_ca_file: str | None = None  # extra CA bundle for HTTPS origins (the mirror's --registry-ca)
    origin_insecure: bool = False  # skip TLS verification of origins (the mirror's --insecure)
    # HTTPS origins with their own CA bundle or no verification (the mirror's --registry-ca HOST=FILE and
    # --registry-insecure HOST for its upstreams).
    origin_tls: tuple[OriginTls, ...] = ()
    daemon_listen_is_default: bool = False  # a busy default socket falls back to DATA_DIR/dfdaemon.sock
    # Fetch policy entries (dfcommon.fetchpolicy) for back-to-source: allowed although refused by default, refused
    # although allowed by default.
    origin_allow: tuple[str, ...] = ()
    origin_deny: tuple[str, ...] = ()
    # Other addresses this dfdaemon listens on, (HOST, PORT, what): the mirror, metrics, a TCP DaemonService.
    listeners: tuple[tuple[str, int, str], ...] = ()
    tls: TlsConfig | None = None  # mutual TLS on PeerService and on every channel to supernodes and parents
    open_inspection: bool = False  # ListCache on a TCP daemon endpoint for callers beyond loopback
    # Local callers' access (peer.access): seconds a URL the origin serves to anyone stays public without another
    # question, and seconds a caller the origin let in (per URL and headers) is not asked about again.
    access_public_ttl: float = PUBLIC_TTL_S
    access_grant_ttl: float = GRANT_TTL_S
    access_check: bool = True  # False (--no-access-check): local callers get whatever the cache and swarm hold
    # PeerService serves only callers with a supernode's access grant (dfcommon.grants); off only while older peers,
    # which send none, are still in the cluster.
    require_grants: bool = True
    extra: dict[str, str] = field(default_factory=dict)

    def validate(self) -> PeerConfig:
        """Check values; InvalidArgument with one clear line otherwise."""
        self.listen_ip = parse_ip(self.listen_ip)
        self.advertise_ip = parse_ip(self.advertise_ip) if self.advertise_ip else ""
        if not 0 <= self.port < 65536:
            raise InvalidArgument(f"invalid port {self.port}")
        if self.upload_slots < 1:
            raise InvalidArgument("--upload-slots must be at least 1")
        check_location(self.location)
        if self.upload_limit < 0 or self.download_limit < 0 or self.cache_quota < 0:
            raise InvalidArgument("limits must not be negative")
        if self.access_public_ttl < 0 or self.access_grant_ttl < 0:
            raise InvalidArgument("--access-public-ttl and --access-grant-ttl must not be negative")
        if not 1 <= self.window <= 256:
            raise InvalidArgument("window must be between 1 and 256")
        if self.daemon_listen is not None:
            self.daemon_listen = validate_endpoint(self.daemon_listen)
        parse_rules(self.origin_allow, ALLOW_FLAG)
        parse_rules(self.origin_deny, DENY_FLAG)
        if self.tls is not None:
            self.tls.validated()
        return self

    def fetch_policy(self, port: int) -> FetchPolicy:
        """Back-to-source's fetch policy once PeerService listens on port: this host's listeners and the supernodes
        refused, loopback refused unless every listener is on loopback."""
        listeners = [(self.listen_ip, port, "PeerService"), *self.listeners]
        if self.daemon_listen and not self.daemon_listen.startswith("unix:"):
            listeners.append((*parse_hostport(self.daemon_listen), "DaemonService"))
        supernodes = [(*parse_hostport(dial_target(entry)), "supernode") for entry in self.supernodes]
        policy = FetchPolicy.build(self.origin_allow, self.origin_deny, listeners, "this dfdaemon")
        cluster = FetchPolicy.build((), (), supernodes, "")  # refused too, but they say nothing about loopback
        return dataclasses.replace(policy, own=policy.own + cluster.own)


__all__ = ["PeerConfig", "parse_duration", "parse_size", "parse_supernodes", "validate_endpoint"]
