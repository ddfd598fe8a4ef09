"""dfget: download a URL through the swarm (local dfdaemon, else an embedded peer, else the origin)."""

from __future__ import annotations

import argparse
import asyncio
import errno
import importlib
import logging
import os
import signal
import stat
import sys
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import grpc
from dandelion.peer.v1 import peer_pb2

from dfcommon.byterange import parse_byte_range
from dfcommon.channels import channel
from dfcommon.content import ContentRequest
from dfcommon.digest import parse_digest
from dfcommon.errors import DandelionError, InvalidArgument, Unavailable
from dfcommon.identity import validate_url
from dfcommon.logs import add_logging_flags, setup_logging
from dfcommon.malloc import limit_malloc_arenas, tune_malloc
from dfcommon.sizes import parse_duration, parse_size
from dfcommon.tls import TlsConfig, add_tls_arguments, tls_from_args
from dfcommon.urlmeta import to_url_meta
from dfcommon.version import add_version_flag
from peer.deadline import BASE_S, FLOOR_RATE, Deadline
from peer.grpcutil import content_chunks, daemon_stub
from peer.membership import parse_supernodes
from peer.output import Job, OutputFile, Progress
from peer.paths import daemon_endpoints, default_daemon_endpoint, endpoint_socket_path, validate_endpoint

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

DAEMON_PROBE_SECONDS = 1.0


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


async def _daemon_answers(endpoint: str) -> grpc.aio.Channel | None:
    path = endpoint_socket_path(endpoint)
    if path is not None and not path.exists():
        return None
    ch = channel(endpoint)
    try:
        async with asyncio.timeout(DAEMON_PROBE_SECONDS):
            await ch.channel_ready()
    except (TimeoutError, grpc.aio.AioRpcError):
        await ch.close(None)
        return None
    return ch


def _download_request(job: Job, local: bool) -> peer_pb2.DownloadRequest:
    request = job.request
    return peer_pb2.DownloadRequest(
        url_meta=to_url_meta(request),
        no_back_source=job.no_back_source,
        rate_limit=job.rate_limit,
        local_copy=local,
    )


def open_local_file(local: peer_pb2.LocalFile) -> int:
    """A read-only fd of the daemon's cache file when this process can open it and it is the same file; else -1."""
    if not local.path or not os.path.isabs(local.path):
        return -1
    try:
        fd = os.open(local.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return -1
    info = os.fstat(fd)
    if (info.st_dev, info.st_ino) != (local.device, local.inode) or not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return -1
    return fd


class LocalFileUnusable(Exception):
    """The daemon's cache file cannot be linked or read from here (another host, mount namespace or user)."""


async def _take_from_daemon(ch: grpc.aio.Channel, job: Job) -> None:
    """Hard-link the daemon's cache file, else copy from it as it verifies; LocalFileUnusable when neither works
    from here (the daemon then streams the content instead)."""
    output, progress = job.output, job.progress
    call = daemon_stub(ch).Download(_download_request(job, local=True))
    source = -1
    done = False
    try:
        async for response in call:
            if not output.linked and source < 0:
                local = response.local_file
                if not output.link_to(local.path, local.device, local.inode):
                    source = open_local_file(local)
                    if source < 0:
                        raise LocalFileUnusable(local.path)
            if output.linked:
                output.follow(response.readable_length)
            elif response.readable_length > output.written:
                await asyncio.to_thread(
                    output.copy_from, source, output.written, response.readable_length - output.written
                )
            progress.update(output.written, response.content_length)
            if response.done:
                output.check_length(response.readable_length)
                done = True
    except grpc.aio.AioRpcError as exc:
        raise DandelionError(exc.details() or exc.code().name, exc.code()) from None
    finally:
        call.cancel()
        if source >= 0:
            os.close(source)
    if not done:
        raise Unavailable("the dfdaemon ended the download early")
    progress.update(output.written, output.written, final=True)


async def _via_daemon(ch: grpc.aio.Channel, job: Job) -> AsyncIterator[tuple[bytes | memoryview, int]]:
    message = _download_request(job, local=False)
    done = False
    try:
        async for item in content_chunks(ch)(message):
            if not isinstance(item, tuple):  # None: a message that does not parse
                raise Unavailable("the dfdaemon sent a malformed message")
            response, data = item
            if data:
                yield data, response.content_length
            if response.done:
                done = True
    except grpc.aio.AioRpcError as exc:
        raise DandelionError(exc.details() or exc.code().name, exc.code()) from None
    if not done:
        raise Unavailable("the dfdaemon ended the download early")


async def _write(source: AsyncIterator[tuple[bytes | memoryview, int]], output: OutputFile, progress: Progress) -> None:
    """Write chunks in a worker thread, one write in flight while the next chunk arrives."""
    total = -1
    writing: asyncio.Future[None] | None = None
    try:
        async for data, total in source:
            if writing is not None:
                await writing
            writing = asyncio.ensure_future(asyncio.to_thread(output.write, data))
            progress.update(output.written, total)
        if writing is not None:
            await writing
            writing = None
    finally:
        if writing is not None:
            await asyncio.gather(writing, return_exceptions=True)
    progress.update(output.written, max(total, output.written), final=True)


async def _through_daemon(ch: grpc.aio.Channel, job: Job) -> None:
    """Copy from the daemon's cache file when this host can read it, else have the content streamed."""
    try:
        await _take_from_daemon(ch, job)
        return
    except LocalFileUnusable as exc:
        logging.getLogger(__name__).info("cannot read the dfdaemon's cache file %s here: streaming instead", exc)
    job.output.rewind()
    await _write(_via_daemon(ch, job), job.output, job.progress)


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
        ch = await _daemon_answers(endpoint)
        if ch is not None:
            logging.getLogger(__name__).info("using the dfdaemon at %s", endpoint)
            try:
                await _through_daemon(ch, job)
                return
            except DandelionError as exc:
                if exc.code == grpc.StatusCode.UNIMPLEMENTED:  # "Method not found!": not a DaemonService
                    raise InvalidArgument(
                        f"{endpoint} answers gRPC but is no dfdaemon's DaemonService (a peer or supernode port?): "
                        f"give --daemon the dfdaemon's --daemon-listen endpoint, by default {default_daemon_endpoint()}"
                    ) from None
                if exc.code != grpc.StatusCode.UNAVAILABLE or await _still_answers(endpoint):
                    raise  # the dfdaemon's own answer: it went to the origin itself where it could
                gone = f"the dfdaemon at {endpoint} went away during the download ({exc})"
            finally:
                await ch.close(None)
            job.output.rewind()
            await _without_daemon(ns, job, supernodes, tls, gone, broke_off=True)
            return
    await _without_daemon(ns, job, supernodes, tls, f"no dfdaemon answers at {', '.join(endpoints)}")


async def _still_answers(endpoint: str) -> bool:
    """True when the dfdaemon at endpoint answers (again): probed after a download through it broke off."""
    ch = await _daemon_answers(endpoint)
    if ch is None:
        return False
    await ch.close(None)
    return True


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
