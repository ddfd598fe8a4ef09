"""The supernode process: one gRPC server with the scheduler, the in-process seed peer's pieces, health and
reflection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from wsgiref.simple_server import WSGIServer

import grpc
from dandelion.peer.v1 import peer_pb2
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc

from dfcommon.errors import Unavailable
from dfcommon.grants import GrantIssuer
from dfcommon.grpcserver import add_health_and_reflection, mark_serving, new_server
from dfcommon.metrics import (
    ACTIVE_HOSTS,
    ACTIVE_PEERS,
    ACTIVE_TASKS,
    PIECE_BYTES_DELIVERED,
    SEED_PEERS,
    start_metrics_server,
)
from dfcommon.tls import add_port, warn_if_plaintext_beyond_loopback
from supernode.access import RegistrationCheck
from supernode.config import SupernodeConfig
from supernode.embedded_seed import EmbeddedSeedPeer
from supernode.rpc.scheduler_service import SchedulerService
from supernode.swarm import Swarm
from supernode.web.server import WebView, bind

log = logging.getLogger(__name__)

SCHEDULER_SERVICE = scheduler_pb2.DESCRIPTOR.services_by_name["SchedulerService"].full_name
PEER_SERVICE = peer_pb2.DESCRIPTOR.services_by_name["PeerService"].full_name


class Supernode:
    """A running supernode; start() binds and serves, stop() shuts down gracefully."""

    def __init__(self, config: SupernodeConfig) -> None:
        self.config = config.validated()
        self.port = 0
        self.swarm: Swarm | None = None
        self._server: grpc.aio.Server | None = None
        self._timers: asyncio.Task[None] | None = None
        self._metrics: WSGIServer | None = None
        self.web: WebView | None = None
        self.seed_peer: EmbeddedSeedPeer | None = None
        self.access: RegistrationCheck | None = None  # asks origins before RegisterTask grants (supernode.access)

    async def start(self) -> int:
        """Bind, serve and return the bound port."""
        config = self.config
        web_socket = bind(config.web) if config.web else None  # before gRPC listens: a taken port is one line
        server = new_server()
        host = f"[{config.listen_host}]" if ":" in config.listen_host else config.listen_host
        try:
            self.port = add_port(server, f"{host}:{config.listen_port}", config.tls)
        except RuntimeError as err:
            raise Unavailable(f"cannot listen on {host}:{config.listen_port}: {err}") from None
        warn_if_plaintext_beyond_loopback("supernode", config.listen_host, config.tls)
        swarm = Swarm(config)
        if config.access_check:
            self.access = RegistrationCheck(config.fetch_policy(self.port), config.origin_ca, config.origin_insecure)
        else:
            log.warning("--no-access-check: RegisterTask grants any host without asking the origin")
        service = SchedulerService(swarm, config.inspection(), GrantIssuer(config.grant_ttl), self.access)
        scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server(service, server)
        services = [SCHEDULER_SERVICE]
        if config.seed_peer:
            self.seed_peer = EmbeddedSeedPeer(config)
            self.seed_peer.add_to(server, self.port)
            services.append(PEER_SERVICE)
        health = await add_health_and_reflection(server, services)
        await server.start()
        self.swarm = swarm
        self._server = server
        self._timers = asyncio.create_task(swarm.run_timers(), name="supernode-timers")
        if self.seed_peer is not None:
            await self.seed_peer.start(self.port)  # registered before the health service says SERVING
        await mark_serving(health, services)
        if config.metrics:
            try:
                self._metrics = start_metrics_server(config.metrics, "supernode")[0]
            except OSError as err:
                raise Unavailable(f"cannot serve metrics on {config.metrics}: {err.strerror or err}") from None
            scheduler = swarm.scheduler
            ACTIVE_TASKS.labels("supernode").set_function(lambda: len(scheduler.tasks))
            ACTIVE_PEERS.set_function(lambda: len(scheduler.peers))
            ACTIVE_HOSTS.set_function(lambda: len(scheduler.hosts))
            SEED_PEERS.set_function(lambda: len(swarm.seed_peers.seeds))
            PIECE_BYTES_DELIVERED.set_function(lambda: scheduler.book.delivered_bytes)
            swarm.limits.export()
        if web_socket is not None:
            self.web = WebView(web_socket, swarm.scheduler, config.inspection(), config.tls)
            await self.web.start()
        seed = f"{config.resolved_advertise_ip()}:{self.port}" if self.seed_peer is not None else "none in-process"
        log.info(
            "supernode serving on %s:%d (%s) seed=%s parent_policy=%s data_dir=%s",
            config.listen_host,
            self.port,
            "mutual TLS" if config.tls else "plaintext",
            seed,
            config.parent_policy,
            config.data_dir,
        )
        return self.port

    async def wait(self) -> None:
        """Until the server stops."""
        if self._server is not None:
            await self._server.wait_for_termination()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting calls, let running ones finish for up to grace seconds, stop fetches."""
        if self.web is not None:
            await self.web.stop()
        if self.seed_peer is not None:
            await self.seed_peer.stop()  # it leaves while the scheduler still answers
        if self.swarm is not None:
            self.swarm.shutdown()
        if self._server is not None:
            await self._server.stop(grace)
        if self._timers is not None:
            self._timers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timers
        if self.access is not None:
            self.access.close()
        if self._metrics is not None:
            self._metrics.shutdown()
            self._metrics.server_close()
        log.info("supernode stopped")
