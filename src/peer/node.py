"""A running peer: storage, supernode link, transferer and its gRPC servers (used by dfdaemon and dfget)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
from pathlib import Path

import grpc
from dandelion.peer.v1 import peer_pb2
from dandelion.scheduler.v1 import scheduler_pb2

from dfcommon.fetchpolicy import FetchPolicy
from dfcommon.grants import GrantKeys
from dfcommon.grpcserver import add_health_and_reflection, mark_serving, new_server
from dfcommon.inspection import InspectionPolicy
from dfcommon.sizes import parse_hostport
from dfcommon.tls import add_port, is_loopback_host, warn_if_plaintext_beyond_loopback
from peer.access import AccessCheck
from peer.config import PeerConfig
from peer.context import ChannelPool, PeerContext
from peer.origin import new_client
from peer.paths import endpoint_socket_path
from peer.rpc.daemon_service import DaemonServicer, add_daemon_service
from peer.rpc.upload import UploadServicer, add_upload_service
from peer.scheduler_client import host_info
from peer.scheduler_cluster import SchedulerClient
from peer.seed_role import SeedRole
from peer.storage import Storage
from peer.tokenbucket import TokenBucket
from peer.transferer import SwarmTransferer

log = logging.getLogger(__name__)

PEER_SERVICE = peer_pb2.DESCRIPTOR.services_by_name["PeerService"].full_name
DAEMON_SERVICE = peer_pb2.DESCRIPTOR.services_by_name["DaemonService"].full_name
GC_INTERVAL = 60.0


def unix_socket_in_use(path: Path, unsure: bool = False) -> bool:
    """True when something accepts connections on the unix socket at path; False when nothing is there or the
    connection is refused; `unsure` when the connect fails otherwise (timed out, not permitted)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
        except OSError as err:
            return unsure and err.errno not in (errno.ECONNREFUSED, errno.ENOENT)
    return True


class PeerNode:
    """Starts and stops everything one peer runs.

    For a peer that runs inside the supernode's process (supernode.embedded_seed): scheduler_endpoint, a local
    scheduler endpoint ("unix:PATH") reached without TLS instead of config.supernodes; policy, the supernode's fetch
    policy (its own ports refused, named as the supernode's) instead of the one config.fetch_policy builds."""

    def __init__(
        self, config: PeerConfig, scheduler_endpoint: str | None = None, policy: FetchPolicy | None = None
    ) -> None:
        self.config = config
        self.scheduler_endpoint = scheduler_endpoint
        self.policy = policy
        self.storage = Storage(config.data_dir, config.cache_ttl, config.cache_quota)
        upload_bucket = TokenBucket(config.upload_limit)
        self.grant_keys = GrantKeys()  # learned from each supernode at RegisterHost
        self.upload = UploadServicer(
            self.storage,
            config.upload_slots,
            upload_bucket,
            config.component,
            grants=self.grant_keys if config.require_grants else None,
        )
        self.port = config.port
        self.scheduler: SchedulerClient | None = None
        self.ctx: PeerContext | None = None
        self.transferer: SwarmTransferer | None = None
        self.seed_role: SeedRole | None = None  # --seed: the supernode's orders
        self.access: AccessCheck | None = None  # local callers' access (DaemonService)
        self._servers: list[grpc.aio.Server] = []
        self._gc: asyncio.Task[None] | None = None
        self._leaving: set[asyncio.Task[None]] = set()
        self.storage.on_evict = self._evicted

    def _evicted(self, task_ids: list[str]) -> None:
        """Entries evicted to make room for a download: leave their tasks in the background."""
        task = asyncio.get_running_loop().create_task(self._leave_tasks(task_ids))
        self._leaving.add(task)
        task.add_done_callback(self._leaving.discard)

    async def start(self, shared_port: int | None = None) -> SwarmTransferer:
        """Bind the servers, connect to the supernodes (lazily), and return the transferer. shared_port: PeerService
        (self.upload) is served by the caller's gRPC server on that port (added with add_upload_service)."""
        config = self.config
        if shared_port is None:
            await self._serve_peer_service()
        else:
            self.port = shared_port
        if config.supernodes or self.scheduler_endpoint:
            self.scheduler = SchedulerClient(
                [self.scheduler_endpoint] if self.scheduler_endpoint else config.supernodes,
                host_info(
                    config.advertise_ip or config.listen_ip,
                    self.port,
                    config.upload_slots,
                    config.location,
                    config.seed,
                ),
                tls=None if self.scheduler_endpoint else config.tls,
                grant_keys=self.grant_keys,
            )
        policy = self.policy or config.fetch_policy(self.port)
        log.info("origin fetch policy: %s", policy.summary())
        self.ctx = PeerContext(
            storage=self.storage,
            scheduler=self.scheduler,
            http=new_client(config.origin_ca_file, config.origin_insecure, policy, config.origin_tls),
            channels=ChannelPool(config.tls),
            download_bucket=TokenBucket(config.download_limit),
            no_back_source=config.no_back_source,
            seed=config.seed,
            component=config.component,
            window=config.window,
        )
        self.transferer = SwarmTransferer(self.ctx)
        if config.daemon_listen is not None:
            await self._start_daemon_service(config.daemon_listen, self.transferer)
        if self.scheduler is not None:
            with contextlib.suppress(Exception):
                await self.scheduler.ensure_registered()
            self.scheduler.start()
            if config.seed:
                self.seed_role = SeedRole(self.scheduler, self.transferer)
                self.seed_role.start()
        self._gc = asyncio.create_task(self._gc_loop(), name="cache-gc")
        log.info(
            "peer serving PeerService on %s:%d (%s)",
            config.listen_ip,
            self.port,
            "mutual TLS" if config.tls else "plaintext",
        )
        return self.transferer

    async def _serve_peer_service(self) -> None:
        config = self.config
        peer_server = new_server()
        add_upload_service(self.upload, peer_server)
        health = await add_health_and_reflection(peer_server, [PEER_SERVICE])
        host = f"[{config.listen_ip}]" if ":" in config.listen_ip else config.listen_ip
        self.port = add_port(peer_server, f"{host}:{config.port}", config.tls)
        if self.port == 0:
            raise OSError(f"cannot listen on {config.listen_ip}:{config.port}")
        warn_if_plaintext_beyond_loopback("dfdaemon", config.listen_ip, config.tls)
        await peer_server.start()
        await mark_serving(health, [PEER_SERVICE])
        self._servers.append(peer_server)

    async def _start_daemon_service(self, endpoint: str, transferer: SwarmTransferer) -> None:
        server = new_server()
        inspection = InspectionPolicy(open=self.config.open_inspection)  # this endpoint is never TLS
        assert self.ctx is not None
        if self.config.access_check:
            self.access = AccessCheck(self.ctx.http.http, self.config.access_public_ttl, self.config.access_grant_ttl)
        else:
            log.warning("--no-access-check: local callers get cached and swarm content the origin may refuse them")
        add_daemon_service(DaemonServicer(transferer, self.storage, inspection, self.access), server)
        health = await add_health_and_reflection(server, [DAEMON_SERVICE])
        path = endpoint_socket_path(endpoint)
        if path is not None and unix_socket_in_use(path):
            if not self.config.daemon_listen_is_default:
                raise OSError(f"{endpoint} is in use by another process")
            endpoint = f"unix:{self.config.data_dir.resolve() / 'dfdaemon.sock'}"
            log.warning("the default dfdaemon socket is in use by another daemon; serving dfget on %s", endpoint)
            self.config.daemon_listen = endpoint
            path = endpoint_socket_path(endpoint)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o755 if os.geteuid() == 0 else 0o700)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if server.add_insecure_port(endpoint) == 0 and path is None:
            raise OSError(f"cannot listen on {endpoint}")
        if path is None and not is_loopback_host(parse_hostport(endpoint)[0]):
            log.warning(
                "the dfget endpoint %s listens beyond loopback and is never TLS: anyone who reaches it can download "
                "through this host; prefer a unix socket or a loopback address",
                endpoint,
            )
        await server.start()
        if path is not None:
            os.chmod(path, 0o660 if os.geteuid() == 0 else 0o600)
        await mark_serving(health, [DAEMON_SERVICE])
        self._servers.append(server)
        log.info("DaemonService on %s", endpoint)

    async def _gc_loop(self) -> None:
        while True:
            await asyncio.sleep(GC_INTERVAL)
            try:
                removed = self.storage.gc()
            except OSError as exc:
                log.warning("cache gc failed: %s", exc)
                continue
            await self._leave_tasks(removed)

    async def _leave_tasks(self, task_ids: list[str]) -> None:
        """Tell the supernode we no longer hold evicted content, so nobody is sent to us for it."""
        if self.scheduler is None or self.ctx is None:
            return
        for task_id in task_ids:
            address, peer_id = self.ctx.peer_ids.pop(task_id, ("", ""))
            supernode = self.scheduler.link(address)
            if supernode is None or not peer_id:
                continue
            try:
                await supernode.stub().LeaveTask(scheduler_pb2.LeaveTaskRequest(peer_id=peer_id), timeout=5)
            except grpc.aio.AioRpcError as exc:
                log.info("LeaveTask for evicted task=%s failed: %s", task_id, exc.code().name)

    async def stop(self, grace: float = 2.0) -> None:
        """Leave the swarm and stop serving."""
        if self._gc is not None:
            self._gc.cancel()
        self.storage.keep_partials = True  # downloads cancelled now leave their verified pieces for the next start
        if self.transferer is not None:
            await self.transferer.close()
        if self.scheduler is not None:
            await self.scheduler.close(leave=True)  # a seed peer leaves before its order stream ends: no alarm
        if self.seed_role is not None:
            await self.seed_role.close()
        await asyncio.gather(*(s.stop(grace) for s in self._servers), return_exceptions=True)
        self._servers.clear()
        if self.ctx is not None:
            await self.ctx.channels.close()
            await self.ctx.http.aclose()
        if self.access is not None:
            self.access.close()
        path = endpoint_socket_path(self.config.daemon_listen) if self.config.daemon_listen else None
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()
        self.storage.close()
