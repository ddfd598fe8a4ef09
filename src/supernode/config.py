"""The supernode's configuration: its values, their defaults and validation (the flags that set them: flags.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dfcommon import grants, piecedigest
from dfcommon.advertise import choose_advertise_ip
from dfcommon.errors import InvalidArgument
from dfcommon.fetchpolicy import (
    ALLOW_FLAG,
    DENY_FLAG,
    FetchPolicy,
    parse_rules,
)
from dfcommon.inspection import DEFAULT_ADMIN_CN, InspectionPolicy
from dfcommon.location import check_location
from dfcommon.logs import LOG_FORMATS, LOG_LEVELS
from dfcommon.pieces import MAX_PIECE_SIZE
from dfcommon.sizes import parse_hostport, parse_ip
from dfcommon.tls import TlsConfig
from supernode.scheduling.evaluator import POLICIES

DEFAULT_PORT = 8002
MIN_PIECE_SIZE = 64 << 10
# Who reads content from its origin for the swarm (supernode.readers); see SupernodeConfig.origin_fetch.
ORIGIN_FETCH_MODES = ("auto", "peer", "seed")
DEFAULT_SEED_CN = "dandelion-seed"
DEFAULT_MAX_TASKS = 100_000
DEFAULT_MAX_PEERS_PER_TASK = 10_000
DEFAULT_MAX_HOSTS = 10_000
MAX_LIMIT = 10_000_000  # the largest value any --max-* flag takes


@dataclass(frozen=True)
class SupernodeConfig:
    """Everything the supernode needs to start."""

    data_dir: Path
    listen_host: str = "0.0.0.0"
    listen_port: int = DEFAULT_PORT
    advertise_ip: str = ""  # empty: the listen host, else found (dfcommon.advertise)
    piece_size: int = 0  # base piece size (grows for very large content); 0: by the fleet's size (base_for_fleet)
    piece_digest: str = piecedigest.DEFAULT_ALGORITHM  # what the reader of the origin hashes each piece with
    # Who reads content from its origin for the swarm (supernode.readers): "auto" a seed peer when one is up, else
    # the first peer for content with a digest; "peer" the first peer for content with a digest (seed peers only for
    # content without one); "seed" as auto (kept for old command lines). Content without a digest that no seed peer
    # reads: each of its peers reads the origin for itself.
    origin_fetch: str = "auto"
    parent_policy: str = "default"  # how the scheduler ranks a piece's holders (scheduling.evaluator.POLICIES)
    seed_copy_delay: float = 5.0  # deprecated, ignored: the seed no longer copies content a peer read
    log_level: str = "info"
    log_format: str = "text"  # or json
    heartbeat_interval_ms: int = 5000  # hosts that miss 3 heartbeats are dropped
    assignment_timeout: float = 30.0  # an unreported assignment then counts as TIMEOUT
    # The in-process seed peer (supernode.embedded_seed): a dfdaemon --seed built from the peer package, its
    # PeerService on the supernode's gRPC port, its cache in DATA_DIR/seed-peer. Off: seed peers are other hosts.
    seed_peer: bool = True
    seed_upload_slots: int = 32  # concurrent DownloadPieces calls the in-process seed peer serves
    location: str = ""  # where the in-process seed peer is, "region|zone|rack" (as dfdaemon --location)
    seed_cache_quota: int = 20 * 1024**3  # bytes the in-process seed peer caches before LRU eviction
    seed_cache_ttl: float = 6 * 3600.0  # seconds an unused task stays in the in-process seed peer's cache
    # A task no peer is left in is forgotten after this many seconds (seed peers keep their caches: a later
    # registration orders it again). Bounds the memory.
    task_ttl: float = 600.0
    # What the supernode remembers at most (supernode.limits): a registration beyond refuses with RESOURCE_EXHAUSTED,
    # after a new task first made room by forgetting the oldest idle task. Each task costs a few KiB, so the
    # defaults bound the scheduler's state to some hundred MB while staying far above what a cluster uses today.
    max_tasks: int = DEFAULT_MAX_TASKS
    max_peers_per_task: int = DEFAULT_MAX_PEERS_PER_TASK
    max_hosts: int = DEFAULT_MAX_HOSTS
    origin_ca: str | None = None  # extra CA bundle for origins with a private CA (a private registry)
    origin_insecure: bool = False  # skip origin TLS verification (test setups only)
    metrics: str = ""  # HOST:PORT of the Prometheus /metrics endpoint; empty: none
    web: str = ""  # HOST:PORT of the live web view (supernode.web), guarded like the inspection RPCs; empty: none
    # Fetch policy entries (dfcommon.fetchpolicy): origins allowed although refused by default (link-local, loopback
    # when listening beyond it, own addresses as IP:PORT), and origins refused although allowed by default.
    origin_allow: tuple[str, ...] = ()
    origin_deny: tuple[str, ...] = ()
    tls: TlsConfig | None = None  # mutual TLS on the gRPC port; None: plaintext
    admin_cn: frozenset[str] = frozenset({DEFAULT_ADMIN_CN})  # with TLS, who may call the inspection RPCs
    open_inspection: bool = False  # inspection RPCs for every caller (see dfcommon.inspection)
    # With TLS, the client certificate common names that may register a host as a seed peer (HostInfo.seed).
    seed_cn: frozenset[str] = frozenset({DEFAULT_SEED_CN})
    grant_ttl: float = grants.DEFAULT_TTL  # seconds an access grant lives (renewed on the stream every third of it)
    require_grants: bool = True  # the in-process seed peer serves only callers with a grant (dfcommon.grants)
    access_check: bool = True  # RegisterTask grants only what the origin lets the requester read (supernode.access)

    def inspection(self) -> InspectionPolicy:
        """Who may call ListTasks, GetTask and ListHosts."""
        return InspectionPolicy(tls=self.tls is not None, admin_names=self.admin_cn, open=self.open_inspection)

    def validated(self) -> SupernodeConfig:
        """Check every value; returns self. Raises InvalidArgument with one line."""
        if self.piece_size != 0 and not MIN_PIECE_SIZE <= self.piece_size <= MAX_PIECE_SIZE:
            raise InvalidArgument(f"piece size must be between 64KiB and 64MiB, got {self.piece_size}")
        if self.piece_digest not in piecedigest.ALGORITHMS:
            raise InvalidArgument(
                f"piece digest must be one of {', '.join(piecedigest.ALGORITHMS)}, got {self.piece_digest!r}"
            )
        if self.origin_fetch not in ORIGIN_FETCH_MODES:
            raise InvalidArgument(
                f"origin fetch must be one of {', '.join(ORIGIN_FETCH_MODES)}, got {self.origin_fetch!r}"
            )
        if self.parent_policy not in POLICIES:
            raise InvalidArgument(f"parent policy must be one of {', '.join(POLICIES)}, got {self.parent_policy!r}")
        if not 0 <= self.seed_copy_delay <= 86400:
            raise InvalidArgument(f"seed copy delay must be between 0s and 86400s, got {self.seed_copy_delay}")
        if not 0 <= self.listen_port < 65536:
            raise InvalidArgument(f"invalid listen port {self.listen_port}")
        if self.log_level not in LOG_LEVELS:
            raise InvalidArgument(f"invalid log level {self.log_level!r}: want one of {', '.join(LOG_LEVELS)}")
        if self.log_format not in LOG_FORMATS:
            raise InvalidArgument(f"invalid log format {self.log_format!r}: want text or json")
        if not 100 <= self.heartbeat_interval_ms <= 600_000:
            raise InvalidArgument("heartbeat interval must be between 100ms and 600000ms")
        if not 0.1 <= self.assignment_timeout <= 3600:
            raise InvalidArgument("assignment timeout must be between 0.1s and 3600s")
        check_location(self.location)
        if not 1 <= self.seed_upload_slots <= 4096:
            raise InvalidArgument("seed upload slots must be between 1 and 4096")
        if self.seed_cache_quota < 64 * 1024**2:
            raise InvalidArgument(f"seed cache quota must be at least 64MiB, got {self.seed_cache_quota} bytes")
        if not 60 <= self.seed_cache_ttl <= 365 * 86400:
            raise InvalidArgument(f"seed cache ttl must be between 1m and 365d, got {self.seed_cache_ttl}s")
        if not grants.MIN_TTL <= self.grant_ttl <= grants.MAX_TTL:
            raise InvalidArgument(f"grant ttl must be between 1s and 1d, got {self.grant_ttl:g}s")
        if not 0.1 <= self.task_ttl <= 30 * 86400:
            raise InvalidArgument(f"task ttl must be between 0.1s and 30d, got {self.task_ttl}s")
        for flag, value in (
            ("--max-tasks", self.max_tasks),
            ("--max-peers-per-task", self.max_peers_per_task),
            ("--max-hosts", self.max_hosts),
        ):
            if not 1 <= value <= MAX_LIMIT:
                raise InvalidArgument(f"{flag} must be between 1 and {MAX_LIMIT}, got {value}")
        if self.advertise_ip:
            parse_ip(self.advertise_ip)
        if self.origin_ca is not None and not os.access(self.origin_ca, os.R_OK):
            raise InvalidArgument(f"--origin-ca {self.origin_ca!r} is not a readable file")
        if self.metrics:
            parse_hostport(self.metrics)
        if self.web:
            parse_hostport(self.web)
        parse_rules(self.origin_allow, ALLOW_FLAG)
        parse_rules(self.origin_deny, DENY_FLAG)
        if not self.admin_cn:
            raise InvalidArgument("--admin-cn needs at least one common name")
        if not self.seed_cn:
            raise InvalidArgument("--seed-cn needs at least one common name")
        if self.tls is not None:
            self.tls.validated()
        return self

    def fetch_policy(self, port: int) -> FetchPolicy:
        """The in-process seed peer's fetch policy once the gRPC server listens on port: the supernode's own
        addresses (gRPC, metrics, web view) refused, loopback refused unless every listener is on loopback."""
        return FetchPolicy.build(self.origin_allow, self.origin_deny, self.listeners(port), "the supernode")

    def listeners(self, port: int) -> list[tuple[str, int, str]]:
        """(host, port, what) of every port the supernode listens on, once the gRPC server listens on port."""
        listeners = [(self.listen_host or "0.0.0.0", port, "gRPC")]
        if self.metrics:
            listeners.append((*parse_hostport(self.metrics), "metrics"))
        if self.web:
            listeners.append((*parse_hostport(self.web), "web view"))
        return listeners

    def resolved_advertise_ip(self) -> str:
        """The IP peers use to reach the in-process seed peer's PeerService; InvalidArgument when only loopback is
        found."""
        return choose_advertise_ip(self.listen_host, self.advertise_ip)
