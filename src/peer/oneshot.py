"""The one-shot peer dfget embeds when no dfdaemon answers: a PeerNode (or, without a supernode, just
back-to-source) in a temp directory, removed afterwards. Imported only when needed (it is heavier)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import tempfile
from pathlib import Path

from dfcommon.sizes import parse_hostport
from dfcommon.tls import TlsConfig
from peer.access import AccessCheck, check_same_content
from peer.conductor import Conductor
from peer.config import PeerConfig
from peer.context import PeerContext
from peer.membership import dial_target
from peer.node import PeerNode
from peer.origin import new_client
from peer.output import Job
from peer.storage import Storage
from peer.transferer import SwarmTransferer

log = logging.getLogger(__name__)


def local_ip_towards(address: str) -> str:
    """The local IP this host uses to reach address (a connected UDP socket sends nothing)."""
    host, port = parse_hostport(address)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        family, _, _, _, sockaddr = infos[0]
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(sockaddr)
            return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"


async def _copy_from_transferer(transferer: SwarmTransferer, job: Job, access: AccessCheck | None = None) -> Conductor:
    """Hard-link the embedded peer's cache file (removed afterwards), else copy from it as it verifies; returns
    the download's conductor. access: the origin is asked first whether this caller may read the URL (the swarm
    hands content to nobody the origin would refuse)."""
    output, progress = job.output, job.progress
    stated = await access.authorise(job.request) if access is not None else -1
    stream = await transferer.open(job.request, no_back_source=job.no_back_source or None, rate_limit=job.rate_limit)
    try:
        check_same_content(job.request, stated, stream.content_length)
    except BaseException:
        await stream.aclose()
        raise
    path, device, inode = stream.local_file()
    source = -1 if output.link_to(path, device, inode) else os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        length = 0
        async for length in stream.readable_lengths():
            if output.linked:
                output.follow(length)
            else:
                await asyncio.to_thread(output.copy_from, source, output.written, length - output.written)
            progress.update(output.written, stream.content_length)
        output.check_length(length)
    finally:
        if source >= 0:
            os.close(source)
        await stream.aclose()
    progress.update(output.written, output.written, final=True)
    return stream.conductor


async def run_embedded(supernodes: list[str], job: Job, tls: TlsConfig | None = None) -> None:
    """Download into output with a one-shot PeerNode (or only from the origin when no supernode is given); tls:
    the cluster's mutual TLS, for the supernode, parents and the peers this one serves."""
    work = Path(tempfile.mkdtemp(prefix="dfget-"))
    try:
        if supernodes:
            node = PeerNode(
                PeerConfig(
                    supernodes=supernodes,
                    listen_ip=os.environ.get("DFGET_LISTEN_IP") or local_ip_towards(dial_target(supernodes[0])),
                    data_dir=work,
                    port=0,
                    no_back_source=job.no_back_source,
                    tls=tls,
                ).validate()
            )
            transferer = await node.start()
            assert node.ctx is not None
            access = AccessCheck(node.ctx.http.http)
            try:
                await _copy_from_transferer(transferer, job, access)
            finally:
                access.close()
                await node.stop()
        else:
            storage = Storage(work)
            ctx = PeerContext(storage=storage, scheduler=None, http=new_client())
            transferer = SwarmTransferer(ctx)
            try:
                await _copy_from_transferer(transferer, job)
            finally:
                await transferer.close()
                await ctx.http.aclose()
                storage.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
