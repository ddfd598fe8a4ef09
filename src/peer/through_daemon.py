"""A dfget's download through its host's dfdaemon (DaemonService.Download): the daemon's cache file hard-linked or
copied as it verifies, else the content streamed; a dfdaemon that goes away midway is waited for while its service
manager restarts it, and the download starts over through it."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import AsyncIterator, Iterable
from typing import cast

import grpc
from dandelion.peer.v1 import peer_pb2

from dfcommon.channels import channel
from dfcommon.errors import DAEMON_ANSWERED, DAEMON_STOPPING, DandelionError, InvalidArgument, Unavailable
from dfcommon.urlmeta import to_url_meta
from peer.grpcutil import content_chunks, daemon_stub
from peer.output import Job, OutputFile, Progress
from peer.paths import default_daemon_endpoint, endpoint_socket_path

log = logging.getLogger(__name__)

DAEMON_PROBE_SECONDS = 1.0
# A dfdaemon that went away during a download (the call broke off, and it no longer answers) is waited for this
# long, then the download goes on without it: its service manager restarts it within a few seconds (the systemd
# unit's RestartSec=2, a pod's first restart), and through it the download resumes from the pieces it verified
# instead of reading the origin again, as every host would after a fleet-wide restart.
DAEMON_RETURN_S = 10.0
DAEMON_RETURNS = 3  # times a download goes on through a dfdaemon that came back
# A dfdaemon that said it is stopping answers for a while yet (its grace). One that still answers after this long is
# taken for one that came back, where its endpoint cannot tell the two apart (TCP).
STOPPING_WAIT_S = 5.0

SocketIdentity = tuple[int, int]


def socket_identity(endpoint: str) -> SocketIdentity | None:
    """(inode, ctime) of the dfdaemon's unix socket file: a restarted dfdaemon binds a new one. None for a TCP
    endpoint, or when no socket is there now."""
    path = endpoint_socket_path(endpoint)
    if path is None:
        return None
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_ino, info.st_ctime_ns


async def daemon_answers(endpoint: str) -> grpc.aio.Channel | None:
    """A channel to the dfdaemon at endpoint when it answers within DAEMON_PROBE_SECONDS, else None."""
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
        raise _call_failed(exc) from None
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
        raise _call_failed(exc) from None
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
        log.info("cannot read the dfdaemon's cache file %s here: streaming instead", exc)
    job.output.rewind()
    await _write(_via_daemon(ch, job), job.output, job.progress)


class DaemonGone(Unavailable):
    """A call to the dfdaemon broke off without the dfdaemon's answer: it died, or its connection did."""


def _call_failed(exc: grpc.aio.AioRpcError) -> DandelionError:
    """The error of a failed call to the dfdaemon: DaemonGone for an UNAVAILABLE it did not answer itself (no
    DAEMON_ANSWERED in the trailing metadata), else its own answer."""
    details = exc.details() or exc.code().name
    trailers = cast("Iterable[tuple[str, object]]", exc.trailing_metadata() or ())  # grpc.aio.Metadata: pairs
    answered = any(key == DAEMON_ANSWERED for key, _ in trailers)
    if exc.code() == grpc.StatusCode.UNAVAILABLE and not answered:
        return DaemonGone(details)
    return DandelionError(details, exc.code())


async def download_through(ch: grpc.aio.Channel, endpoint: str, job: Job) -> str:
    """Download through the dfdaemon at endpoint. When it goes away midway (the call breaks off without its answer:
    killed, crashed; or it says it is stopping), wait up to DAEMON_RETURN_S for it to answer again, as its service
    manager restarts it, and start over through it: it kept the pieces it had verified, so the origin is not read
    twice (DAEMON_RETURNS times at most). Returns "" when done, else why the download leaves the dfdaemon."""
    returns = 0
    while True:
        bound = socket_identity(endpoint)  # the dfdaemon this attempt talks to
        try:
            await _through_daemon(ch, job)
            return ""
        except DaemonGone as exc:
            stopping, gone = False, f"the dfdaemon at {endpoint} went away during the download ({exc})"
        except DandelionError as exc:
            if exc.code == grpc.StatusCode.UNIMPLEMENTED:  # "Method not found!": not a DaemonService
                raise InvalidArgument(
                    f"{endpoint} answers gRPC but is no dfdaemon's DaemonService (a peer or supernode port?): "
                    f"give --daemon the dfdaemon's --daemon-listen endpoint, by default {default_daemon_endpoint()}"
                ) from None
            if exc.code != grpc.StatusCode.UNAVAILABLE or str(exc) != DAEMON_STOPPING:
                raise  # the dfdaemon's own answer: it went to the origin itself where it could
            stopping, gone = True, f"the dfdaemon at {endpoint} went away during the download ({exc})"
        finally:
            await ch.close(None)
        if returns >= DAEMON_RETURNS:
            return f"{gone} {returns} times"
        back = await _daemon_comes_back(endpoint, DAEMON_RETURN_S, stopping, bound)
        if back is None:
            return f"{gone} and did not come back within {DAEMON_RETURN_S:.0f} s"
        log.info("%s; it answers again: going on through it", gone)
        returns += 1
        ch = back
        job.output.rewind()


async def _still_answers(endpoint: str) -> bool:
    """True when the dfdaemon at endpoint answers: one that said it is stopping does for a while (its grace)."""
    ch = await daemon_answers(endpoint)
    if ch is None:
        return False
    await ch.close(None)
    return True


async def _daemon_comes_back(
    endpoint: str, seconds: float, stopping: bool, bound: SocketIdentity | None
) -> grpc.aio.Channel | None:
    """A channel to the dfdaemon at endpoint once it answers again within seconds, else None. One that said it is
    stopping (it answers for a while yet) is first waited for to stop answering: while its socket file (bound) is
    still there, or for up to STOPPING_WAIT_S on a TCP endpoint. A new dfdaemon on a new socket file is not the old
    one still stopping, however soon it answers."""
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    stop_by = loop.time() + STOPPING_WAIT_S
    while stopping:
        if bound is not None:
            if socket_identity(endpoint) != bound:
                break  # gone, or another dfdaemon's socket
        elif loop.time() >= stop_by:
            break
        if not await _still_answers(endpoint):
            break
        if loop.time() >= until:
            return None
        await asyncio.sleep(0.1)
    while True:
        ch = await daemon_answers(endpoint)
        if ch is not None:
            return ch
        if loop.time() >= until:
            return None
        await asyncio.sleep(min(0.2, max(0.0, until - loop.time())))
