"""The supernode's in-process seed peer: a dfdaemon in the seed role built from the peer package (the same store,
origin client, PeerService and SeedRole as `dfdaemon --seed`), so a one-host cluster is one command and there is
one data path in the product.

Its PeerService is served on the supernode's gRPC port (peers fetch its pieces there), its cache lives in
DATA_DIR/seed-peer, and it reaches the scheduler over a unix socket in a private directory (mode 0700, no TLS):
only this user's processes can connect there, so a registration through it may take the seed role without a
seed certificate. To the scheduler it is a seed peer like any other (HostInfo.seed, rendezvous-hashed orders).

stop() removes that directory. A supernode that was killed (SIGKILL, the OOM killer) cannot, so each start first
removes this user's directories of the kind whose socket nobody listens on any more.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import grpc

from peer.config import PeerConfig
from peer.node import PeerNode, unix_socket_in_use
from peer.rpc.upload import add_upload_service
from supernode.config import SupernodeConfig

log = logging.getLogger(__name__)

SOCKET_NAME = "scheduler.sock"
DIR_PREFIX = "dandelion-sn-"
STALE_AFTER_S = 60.0  # younger directories may belong to a supernode that is starting and has not bound yet


def remove_stale_dirs(parent: Path | None = None, now: float | None = None) -> list[Path]:
    """Remove the private directories of killed supernodes in parent (the temporary directory): this user's, at
    least STALE_AFTER_S old, with no process listening on their socket. Returns what was removed."""
    parent = parent or Path(tempfile.gettempdir())
    now = time.time() if now is None else now
    removed = []
    for path in parent.glob(DIR_PREFIX + "*"):
        try:
            info = path.lstat()
        except OSError:
            continue
        if not path.is_dir() or path.is_symlink() or info.st_uid != os.getuid():
            continue
        if now - info.st_mtime < STALE_AFTER_S or unix_socket_in_use(path / SOCKET_NAME, unsure=True):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


class EmbeddedSeedPeer:
    """Created before the supernode's server starts (add_to adds PeerService and the unix port to it); start() once
    the server serves; stop() before the server stops."""

    def __init__(self, config: SupernodeConfig) -> None:
        self.config = config
        # A short private path: unix socket paths are limited to 107 bytes, data dirs can be long.
        for stale in remove_stale_dirs():
            log.info("removed %s, left by a supernode that was killed", stale)
        self._dir = Path(tempfile.mkdtemp(prefix=DIR_PREFIX))
        self.endpoint = f"unix:{self._dir / SOCKET_NAME}"
        self.node: PeerNode | None = None
        self._storage_dir = config.data_dir / "seed-peer"

    def add_to(self, server: grpc.aio.Server, port: int) -> None:
        """Serve the seed peer's PeerService on the supernode's server (bound on port) and the scheduler on the
        private unix socket."""
        policy = self.config.fetch_policy(port)
        self.node = PeerNode(self._peer_config(port), scheduler_endpoint=self.endpoint, policy=policy)
        add_upload_service(self.node.upload, server)
        if server.add_insecure_port(self.endpoint) == 0:
            raise OSError(f"cannot listen on {self.endpoint}")

    def _peer_config(self, port: int) -> PeerConfig:
        config = self.config
        return PeerConfig(
            supernodes=[],
            listen_ip=config.listen_host or "0.0.0.0",
            data_dir=self._storage_dir,
            advertise_ip=config.resolved_advertise_ip(),
            port=port,
            upload_slots=config.seed_upload_slots,
            seed=True,
            component="supernode",
            cache_ttl=config.seed_cache_ttl,
            cache_quota=config.seed_cache_quota,
            location=config.location,
            origin_ca_file=config.origin_ca,
            origin_insecure=config.origin_insecure,
            origin_allow=config.origin_allow,
            origin_deny=config.origin_deny,
            tls=config.tls,  # towards parents (a seed peer joining a task fetches what it does not read)
            require_grants=config.require_grants,
        ).validate()

    async def start(self, port: int) -> None:
        """Register with the scheduler and take its orders."""
        assert self.node is not None, "add_to first"
        await self.node.start(shared_port=port)
        log.info(
            "in-process seed peer %s (%s:%d), cache %s",
            socket.gethostname(),
            self.node.config.advertise_ip,
            port,
            self._storage_dir,
        )

    async def stop(self) -> None:
        """Leave the scheduler, stop the ordered downloads (what they stored stays), remove the socket."""
        if self.node is not None:
            await self.node.stop()
        shutil.rmtree(self._dir, ignore_errors=True)
