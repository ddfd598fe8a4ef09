"""dfget: download a URL through the swarm (local dfdaemon, else an embedded peer, else the origin)."""

from __future__ import annotations

import argparse
import asyncio
import errno
import importlib
import logging
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from dfcommon.byterange import parse_byte_range
from dfcommon.content import ContentRequest
from dfcommon.digest import parse_digest
from dfcommon.errors import DandelionError, InvalidArgument, Unavailable
from dfcommon.identity import validate_url
from dfcommon.logs import add_logging_flags, setup_logging
from dfcommon.malloc import limit_malloc_arenas, tune_malloc
from dfcommon.sizes import parse_duration, parse_size
from dfcommon.tls import TlsConfig, add_tls_arguments, tls_from_args
from dfcommon.version import add_version_flag
from peer.deadline import BASE_S, FLOOR_RATE, Deadline
from peer.membership import parse_supernodes
from peer.output import Job, OutputFile, Progress
from peer.paths import daemon_endpoints, validate_endpoint
from peer.through_daemon import daemon_answers, download_through

EXAMPLES = """examples:
  dfget https://example.com/images/big.iso -o big.iso
  dfget http://origin/file.tar --digest sha256:9f86d0...a08 -o /data/file.tar --quiet
  dfget 'https://bucket/obj?X-Sig=abc&Expires=1' --filter X-Sig,Expires -o obj
  dfget https://private/x --header 'Authorization: Bearer TOKEN' -o x --rate-limit 50M
  dfget http://origin/f -o f --supernode 10.0.0.5:8002     # no local dfdaemon: one-shot peer
  dfget http://origin/f -o f --supernode 10.0.0.5:8002 --tls-cert n.pem --tls-key n-key.pem --tls-ca ca.pem
  dfget preheat REF|URL --supernode HOST:PORT          # load content into the supernode first

Uses the dfdaemon at --daemon (default: the first of the sockets below that answers); else an embedded
peer when --supernode is given; else downloads from the origin directly and says so (unless --no-back-source).
"""


def build_parser() -> argparse.ArgumentParser:
    """The dfget command line."""
    parser = argparse.ArgumentParser(
        prog="dfget",
        description="Download a URL through the Dandelion peer-to-peer swarm.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version_flag(parser)
    parser.add_argument("url", help="http(s) URL to download")
    parser.add_argument("-o", "--output", required=True, type=Path, help="file to write (appears atomically)")
    parser.add_argument("--header", action="append", default=[], help="'Key: Value' sent to the origin")
    parser.add_argument("--digest", default="", help="expected sha256:HEX or md5:HEX of the content")
    parser.add_argument("--filter", default="", help="query parameters to drop from the task identity, q1,q2")
    parser.add_argument("--range", default="", help="byte range START-END of the origin content")
    parser.add_argument(
        "--daemon",
        default=None,
        help=f"dfdaemon endpoint (default: {' or '.join(daemon_endpoints())}, the first that answers)",
    )
    parser.add_argument(
        "--supernode", default="", help="supernode HOST:PORT[,...] or dns:///NAME:PORT for an embedded peer"
    )
    parser.add_argument("--rate-limit", default="0", help="bytes/s for this download, e.g. 50M (0: none)")
    parser.add_argument("--no-back-source", action="store_true", help="never download from the origin directly")
    parser.add_argument(
        "--fsync", action="store_true", help="flush FILE to disk before it appears (slower; survives a power loss)"
    )
    parser.add_argument(
        "--timeout",
        default=None,
        help=f"give up after this long, e.g. 90s, 30m (0: never; default {BASE_S:.0f}s + size at "
        f"{FLOOR_RATE >> 10} KiB/s)",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_logging_flags(parser, "error")
    add_tls_arguments(parser, "the one-shot peer of --supernode (the dfdaemon's local endpoint is never TLS)")
    return parser


def parse_headers(items: list[str]) -> dict[str, str]:
    """'Key: Value' strings -> dict (the values are secrets: never echoed)."""
    headers: dict[str, str] = {}
    for index, item in enumerate(items, 1):
        key, sep, value = item.partition(":")
        if not sep or not key.strip() or any(c.isspace() for c in key.strip()):
            raise InvalidArgument(f"invalid --header number {index}: want 'Key: Value'")
        headers[key.strip()] = value.strip()
    return headers


def content_request(ns: argparse.Namespace) -> ContentRequest:
    """The validated request the flags describe."""
    validate_url(ns.url)
    if ns.digest:
        parse_digest(ns.digest)
    if ns.range:
        parse_byte_range(ns.range)
    return ContentRequest(
        url=ns.url,
        headers=parse_headers(ns.header),
        digest=ns.digest,
        filtered_query_params=tuple(q.strip() for q in ns.filter.split(",") if q.strip()),
        byte_range=ns.range,
    )


class Interrupted(Exception):
    """dfget got SIGTERM or SIGINT."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


async def download(ns: argparse.Namespace) -> None:
    """Run one download to ns.output, atomically, within the deadline; SIGTERM and SIGINT stop it (Interrupted)
    and, like every other way out, leave no temp file."""
    request = content_request(ns)
    rate = parse_size(ns.rate_limit)
    deadline = Deadline(parse_duration(ns.timeout) if ns.timeout is not None else None)
    endpoints = [validate_endpoint(ns.daemon)] if ns.daemon else daemon_endpoints()
    supernodes = parse_supernodes(ns.supernode) if ns.supernode else []
    tls = tls_from_args(ns)
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    assert me is not None
    signals: list[int] = []

    def stop(signum: int) -> None:
        signals.append(signum)
        me.cancel()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop, signum)
    output = OutputFile(ns.output)
    job = Job(request, ns.no_back_source, rate, output, Progress(enabled=not ns.quiet and sys.stderr.isatty()))
    try:
        # The size seen: the content length, or what arrived so far while the origin did not say.
        await deadline.run(_fetch(ns, job, endpoints, supernodes, tls), lambda: max(job.progress.total, output.written))
        output.commit(flush=ns.fsync)
    except asyncio.CancelledError:
        output.discard()
        if signals:
            raise Interrupted(signals[0]) from None
        raise
    except BaseException:
        output.discard()
        raise


async def _fetch(
    ns: argparse.Namespace, job: Job, endpoints: list[str], supernodes: list[str], tls: TlsConfig | None
) -> None:
    """The download itself: through the first dfdaemon that answers, an embedded peer, or the origin."""
    for endpoint in endpoints:
        ch = await daemon_answers(endpoint)
        if ch is not None:
            logging.getLogger(__name__).info("using the dfdaemon at %s", endpoint)
            gone = await download_through(ch, endpoint, job)
            if gone:
                job.output.rewind()
                await _without_daemon(ns, job, supernodes, tls, gone, broke_off=True)
            return
    await _without_daemon(ns, job, supernodes, tls, f"no dfdaemon answers at {', '.join(endpoints)}")


async def _without_daemon(
    ns: argparse.Namespace,
    job: Job,
    supernodes: list[str],
    tls: TlsConfig | None,
    why: str,
    broke_off: bool = False,
) -> None:
    """No dfdaemon to go through (why says so; broke_off: one went away during the download): an embedded peer with
    --supernode, else the origin directly, as Dragonfly's dfget does, unless --no-back-source."""
    if not supernodes and ns.no_back_source:
        raise Unavailable(f"{why} and no --supernode given, and --no-back-source forbids downloading from the origin")
    if not supernodes or broke_off:
        way = "through a peer of its own (--supernode)" if supernodes else "from the origin directly"
        print(f"dfget: {why}: downloading {way}", file=sys.stderr)
    from peer.oneshot import run_embedded

    await run_embedded(supernodes, job, tls)


def run_loop(main_coroutine: Coroutine[Any, Any, None], embedded_peer: bool) -> None:
    """Run dfget's event loop: uvloop when it may become a peer (--supernode), which moves pieces and reads the
    origin; else asyncio's own loop, which is all a client of the local dfdaemon needs, and dfget starts ~20 ms of
    CPU sooner without importing uvloop (every dfget on a host that starts one per download pays its start-up)."""
    if embedded_peer:
        import uvloop

        uvloop.run(main_coroutine)
    else:
        asyncio.run(main_coroutine)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the dfget command (`dfget preheat ...` runs peer.preheat when it is built in)."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["preheat"]:
        try:
            preheat = importlib.import_module("peer.preheat")
        except ImportError:
            print("dfget: preheat is not available in this build", file=sys.stderr)
            raise SystemExit(2) from None
        raise SystemExit(preheat.main(args[1:]))
    tune_malloc()
    limit_malloc_arenas()
    ns = build_parser().parse_args(args)
    try:
        setup_logging("dfget", ns.log_level, ns.log_format)
    except DandelionError as exc:
        print(f"dfget: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.getLogger("grpc").setLevel(logging.ERROR)
    try:
        run_loop(download(ns), embedded_peer=bool(ns.supernode))
    except DandelionError as exc:
        print(f"dfget: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            print(f"dfget: disk full writing {ns.output}", file=sys.stderr)
        else:
            print(f"dfget: {exc.strerror or exc} ({ns.output})", file=sys.stderr)
        raise SystemExit(1) from None
    except Interrupted as exc:
        print(f"dfget: interrupted by {exc}", file=sys.stderr)
        raise SystemExit(128 + exc.signum) from None
    except KeyboardInterrupt:
        print("dfget: interrupted", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
