"""The supernode's command line: its flags, their help and examples, and the SupernodeConfig they give."""

from __future__ import annotations

import argparse
from pathlib import Path

from dfcommon import piecedigest
from dfcommon.errors import InvalidArgument
from dfcommon.fetchpolicy import add_origin_policy_arguments, split_entries
from dfcommon.inspection import add_inspection_arguments, parse_admin_names
from dfcommon.logs import add_logging_flags
from dfcommon.sizes import parse_duration, parse_hostport, parse_ip, parse_size
from dfcommon.tls import add_tls_arguments, tls_from_args
from dfcommon.version import add_version_flag
from supernode.config import (
    DEFAULT_MAX_HOSTS,
    DEFAULT_MAX_PEERS_PER_TASK,
    DEFAULT_MAX_TASKS,
    DEFAULT_PORT,
    DEFAULT_SEED_CN,
    SupernodeConfig,
)
from supernode.scheduling.evaluator import POLICIES

EXAMPLES = """examples:
  supernode --data-dir /var/lib/dandelion/supernode                  # 0.0.0.0:8002
  supernode --listen 10.0.0.5:8002 --data-dir /srv/sn --metrics 0.0.0.0:8003
  supernode --listen 127.0.0.1:8002 --data-dir /srv/sn --web 127.0.0.1:8004   # open http://127.0.0.1:8004/
  supernode --listen 127.0.0.1:8002 --advertise-ip 127.0.0.1 --data-dir /tmp/sn --piece-size 8MiB
  supernode --config /etc/dandelion/supernode.toml                   # data-dir = "/srv/sn" ...
  SUPERNODE_ORIGIN_CA=/etc/ssl/private-ca.pem supernode --data-dir /srv/sn
  supernode --data-dir /srv/sn --origin-allow 127.0.0.1:5000 --origin-deny 10.9.0.0/16,*:9100
  supernode --listen 10.0.0.5:8002 --data-dir /srv/sn --tls-cert sn.pem --tls-key sn-key.pem --tls-ca ca.pem

Inspect it: dfinspect tasks; dfinspect task ID-PREFIX; dfinspect hosts
            grpcurl -plaintext 127.0.0.1:8002 list
            grpcurl -plaintext 127.0.0.1:8002 dandelion.scheduler.v1.SchedulerService/ListTasks
  with TLS: grpcurl -cacert ca.pem -cert admin.pem -key admin-key.pem 10.0.0.5:8002 list
(ListTasks, GetTask and ListHosts answer loopback callers only, or with TLS admin certificates only.)
"""


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT to listen on; port 0 picks a free port."""
    if text.strip().endswith(":0"):
        host, _ = parse_hostport(text.strip()[:-2] + ":1")
        return host, 0
    return parse_hostport(text)


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags."""
    parser = argparse.ArgumentParser(
        prog="supernode",
        description="Dandelion supernode: the swarm's scheduler and, unless --no-seed-peer, a seed peer (one gRPC "
        "port, with health and "
        "reflection). Options also come from a config file (--config, TOML or YAML, keys = flag names) and "
        "SUPERNODE_<FLAG> environment variables; flags win over the environment, which wins over the file.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version_flag(parser)
    parser.add_argument("--listen", default=f"0.0.0.0:{DEFAULT_PORT}", help="HOST:PORT of the gRPC server")
    parser.add_argument("--data-dir", required=True, help="directory of the in-process seed peer's cache (seed-peer/)")
    parser.add_argument(
        "--advertise-ip",
        default="",
        help="IP peers use to reach the in-process seed peer (default: the listen address, or for 0.0.0.0 the source "
        "address of the default route or the one non-loopback interface)",
    )
    parser.add_argument(
        "--piece-size",
        default="",
        help="base piece size (64KiB-64MiB): content under 64 pieces of it gets pieces halved down to 512KiB, very "
        "large content bigger pieces (default: by the plain hosts registered: 4MiB for one, 512KiB for 2-16, "
        "doubled per doubling of the hosts, 4MiB beyond 64)",
    )
    parser.add_argument(
        "--piece-digest",
        default=piecedigest.DEFAULT_ALGORITHM,
        help="hash the reader of the origin publishes for each piece: blake3 (default, ~3x faster) or sha256",
    )
    parser.add_argument(
        "--origin-fetch",
        default="auto",
        help="who reads content from its origin for the swarm, offering each piece as it stores it: auto (default: a "
        "seed peer, this supernode's own or dfdaemon --seed; when none is up, the first peer that asks, for content "
        "with a digest, which each peer checks; content without one each peer then reads for itself), peer (the "
        "first peer for content with a digest, even when seed peers are up) or seed (as auto)",
    )
    parser.add_argument(
        "--parent-policy",
        default="default",
        help="how the scheduler picks which holder sends a piece: "
        + "; ".join(f"{name}: {policy.summary}" for name, policy in POLICIES.items()),
    )
    parser.add_argument(
        "--seed-copy-delay",
        default="5",
        help="deprecated, ignored (the seed no longer copies content a peer read from its origin: that peer offers "
        "each piece to the swarm as it stores it)",
    )
    add_logging_flags(parser)
    parser.add_argument(
        "--heartbeat-interval",
        default="5000",
        help="host heartbeat interval in ms (default 5000; longer when many hosts are registered: at most 500 "
        "heartbeats a second in all)",
    )
    parser.add_argument("--assignment-timeout", default="30", help="seconds before an assignment times out")
    parser.add_argument(
        "--no-seed-peer",
        action="store_true",
        help="run no seed peer in this process: seed peers are other hosts (dfdaemon --seed)",
    )
    parser.add_argument(
        "--seed-upload-slots", default="32", help="concurrent uploads of the in-process seed peer (default 32)"
    )
    parser.add_argument(
        "--location",
        default="",
        help='where the in-process seed peer is, "region|zone|rack" (as dfdaemon --location): the scheduler ranks it '
        "for each child by the levels they share, as any host (--parent-policy nearest: its own zone first)",
    )
    parser.add_argument(
        "--seed-cache-quota", default="20GiB", help="cache size of the in-process seed peer (default 20GiB)"
    )
    parser.add_argument(
        "--seed-cache-ttl",
        default="6h",
        help="how long the in-process seed peer keeps a task nobody used (default 6h)",
    )
    parser.add_argument(
        "--task-ttl",
        default="10m",
        help="forget a task this long after its last peer left (90s, 10m, 1h; default 10m); seed peers keep their "
        "cached copy",
    )
    parser.add_argument(
        "--max-tasks",
        default=str(DEFAULT_MAX_TASKS),
        help=f"tasks the supernode remembers at most (default {DEFAULT_MAX_TASKS:,}: a few KiB each, some hundred MB "
        "at most, far above the images and layers a cluster pulls within --task-ttl); a new task beyond it first "
        "makes room by forgetting the oldest task no peer is in, else RegisterTask answers RESOURCE_EXHAUSTED and "
        "the dfdaemon reads the origin",
    )
    parser.add_argument(
        "--max-peers-per-task",
        default=str(DEFAULT_MAX_PEERS_PER_TASK),
        help=f"peers in one task at most (default {DEFAULT_MAX_PEERS_PER_TASK:,}: as many as --max-hosts, so only "
        "a lower value refuses anyone); seed peers are never refused",
    )
    parser.add_argument(
        "--max-hosts",
        default=str(DEFAULT_MAX_HOSTS),
        help=f"hosts registered at most (default {DEFAULT_MAX_HOSTS:,}, about ten times the largest cluster tested; "
        "a host that re-registers at its address takes its old place; seed peers are never refused)",
    )
    parser.add_argument("--origin-ca", default=None, help="extra CA bundle (PEM) trusted for origin HTTPS")
    parser.add_argument("--origin-insecure", action="store_true", help="skip origin TLS verification (tests only)")
    parser.add_argument("--metrics", default="", help="serve Prometheus /metrics on HOST:PORT (default: off)")
    parser.add_argument(
        "--web",
        default="",
        metavar="HOST:PORT",
        help="serve a live view of the swarm on HOST:PORT (default: off); who may see it: as for ListTasks "
        "(loopback, or with TLS an admin certificate over HTTPS, unless --open-inspection)",
    )
    parser.add_argument(
        "--grant-ttl",
        default="10m",
        help="how long an access grant to fetch a task's pieces lives (1s-1d, default 10m); renewed on each peer's "
        "piece stream every third of it",
    )
    parser.add_argument(
        "--no-require-grants",
        action="store_true",
        help="the in-process seed peer serves pieces to callers without an access grant (only while older peers "
        "are in the cluster)",
    )
    parser.add_argument(
        "--no-access-check",
        action="store_true",
        help="RegisterTask grants any registered host without asking the origin whether the registration's headers "
        "let it read the URL (for simulated hosts with no real origin; default: asked, public content once)",
    )
    add_origin_policy_arguments(parser, "the in-process seed peer, preheat and the access check")
    add_inspection_arguments(parser, "ListTasks, GetTask and ListHosts")
    add_tls_arguments(parser, "the gRPC port")
    parser.add_argument(
        "--seed-cn",
        default=DEFAULT_SEED_CN,
        help="with TLS, the client certificate common names (comma-separated) that may register a host as a seed "
        f"peer (dfdaemon --seed; default {DEFAULT_SEED_CN})",
    )
    return parser


def from_args(args: argparse.Namespace) -> SupernodeConfig:
    """Config from parsed flags; InvalidArgument on a bad value."""
    host, port = parse_listen(args.listen)
    piece_size = parse_size(args.piece_size) if args.piece_size else 0  # unset: 0, by the fleet's size
    if args.piece_size and piece_size == 0:
        raise InvalidArgument("piece size must be between 64KiB and 64MiB, got 0")
    try:
        heartbeat = int(args.heartbeat_interval)
        timeout = float(args.assignment_timeout)
        slots = int(args.seed_upload_slots)
        copy_delay = float(args.seed_copy_delay)
        task_ttl = parse_duration(args.task_ttl)
        seed_cache_ttl = parse_duration(args.seed_cache_ttl)
        grant_ttl = parse_duration(args.grant_ttl)
        max_tasks, max_peers_per_task, max_hosts = (
            int(args.max_tasks),
            int(args.max_peers_per_task),
            int(args.max_hosts),
        )
    except ValueError as err:
        raise InvalidArgument(f"invalid number: {err}") from None
    return SupernodeConfig(
        data_dir=Path(args.data_dir),
        listen_host=host,
        listen_port=port,
        advertise_ip=parse_ip(args.advertise_ip) if args.advertise_ip else "",
        piece_size=piece_size,
        piece_digest=args.piece_digest,
        origin_fetch=args.origin_fetch,
        parent_policy=args.parent_policy,
        seed_copy_delay=copy_delay,
        log_level=args.log_level,
        log_format=args.log_format,
        heartbeat_interval_ms=heartbeat,
        assignment_timeout=timeout,
        seed_peer=not args.no_seed_peer,
        seed_upload_slots=slots,
        location=args.location,
        seed_cache_quota=parse_size(args.seed_cache_quota),
        seed_cache_ttl=seed_cache_ttl,
        task_ttl=task_ttl,
        max_tasks=max_tasks,
        max_peers_per_task=max_peers_per_task,
        max_hosts=max_hosts,
        origin_ca=args.origin_ca,
        origin_insecure=args.origin_insecure,
        metrics=args.metrics,
        web=args.web,
        origin_allow=split_entries(args.origin_allow),
        origin_deny=split_entries(args.origin_deny),
        tls=tls_from_args(args),
        admin_cn=parse_admin_names(args.admin_cn),
        open_inspection=args.open_inspection,
        seed_cn=frozenset(name.strip() for name in args.seed_cn.split(",") if name.strip()),
        grant_ttl=grant_ttl,
        require_grants=not args.no_require_grants,
        access_check=not args.no_access_check,
    ).validated()
