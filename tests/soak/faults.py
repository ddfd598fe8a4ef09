"""Fault injectors: each takes the cluster and a seeded random source, does one fault, returns its record.

Process faults act on roles, not on components: kill_seed kills whatever service plays "seed"
(cluster.ROLE_ALIASES; the supernode today). The driver runs one fault at a time, so a replay with the same
--seed asks for the same sequence of faults on the same roles.
"""

from __future__ import annotations

import errno
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fixtures.images import PushedImage

from .cluster import Cluster, Service
from .garbage import cut_client, send_garbage
from .workload import Ledger


@dataclass
class FaultRecord:
    """One injected fault."""

    kind: str
    target: str
    started: float
    duration: float = 0.0
    detail: str = ""

    def as_json(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return dict(self.__dict__)


@dataclass
class FaultContext:
    """What injectors act on and where they report problems."""

    cluster: Cluster
    ledger: Ledger
    images: list[PushedImage]
    fill_peer: Service | None  # the peer whose data dir is a small tmpfs
    work_dir: Path
    download_deadline: float = 60.0
    strict_grpc: bool = False  # junk gRPC requests must get a deliberate status (INVALID_ARGUMENT...), not UNKNOWN
    violations: list[str] = field(default_factory=list)
    kills: Counter[str] = field(default_factory=Counter)  # role → SIGKILLs (and restarts) caused
    down_windows: list[tuple[str, float, float]] = field(default_factory=list)  # (role, down at, back at)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def violation(self, text: str) -> None:
        """Record an invariant violation seen while injecting."""
        with self.lock:
            self.violations.append(f"t={self.ledger.now():.1f}s {text}")


def restart(ctx: FaultContext, service: Service, rng: random.Random, down: tuple[float, float]) -> str:
    """SIGKILL service, keep it down for a while, start it again on the same ports and data dir."""
    pause = rng.uniform(*down)
    service.kill()
    down_at = ctx.ledger.now()
    ctx.kills[service.role] += 1
    time.sleep(pause)
    try:
        service.start()
    except Exception as exc:
        ctx.violation(f"{service.role} did not come back after a restart: {str(exc)[-400:]}")
        return f"down {pause:.1f}s, restart FAILED"
    finally:
        ctx.down_windows.append((service.role, down_at, ctx.ledger.now()))
    return f"down {pause:.1f}s"


def kill_peer(ctx: FaultContext, rng: random.Random) -> FaultRecord:
    """SIGKILL a random dfdaemon and restart it."""
    peer = rng.choice(ctx.cluster.peers)
    record = FaultRecord("kill_peer", peer.role, ctx.ledger.now())
    record.detail = restart(ctx, peer, rng, (0.2, 3.0))
    record.duration = ctx.ledger.now() - record.started
    return record


def kill_role(kind: str, role: str) -> Callable[[FaultContext, random.Random], FaultRecord]:
    """An injector that SIGKILLs whatever plays role and restarts it."""

    def inject(ctx: FaultContext, rng: random.Random) -> FaultRecord:
        service = ctx.cluster.role(role)
        record = FaultRecord(kind, service.role, ctx.ledger.now())
        record.detail = restart(ctx, service, rng, (0.2, 3.0))
        record.duration = ctx.ledger.now() - record.started
        return record

    inject.__doc__ = f"SIGKILL the {role} role and restart it."
    return inject


def restart_service(kind: str, role: str) -> Callable[[FaultContext, random.Random], FaultRecord]:
    """An injector that kills a third-party service (origin, registry) and starts it again."""

    def inject(ctx: FaultContext, rng: random.Random) -> FaultRecord:
        service = ctx.cluster.role(role)
        record = FaultRecord(kind, role, ctx.ledger.now())
        record.detail = restart(ctx, service, rng, (0.2, 2.0))
        record.duration = ctx.ledger.now() - record.started
        return record

    inject.__doc__ = f"Restart the {role}."
    return inject


def fill_disk(ctx: FaultContext, rng: random.Random) -> FaultRecord:
    """Fill the tmpfs peer's data dir with a junk file until ENOSPC, hold it full a few seconds, free it."""
    return _fill(ctx, "fill_disk", rng.uniform(3.0, 8.0))


def fill_disk_long(ctx: FaultContext, rng: random.Random) -> FaultRecord:
    """Fill it but for 1-3 MiB, so downloads through that peer start and run out of space midway, and keep it so
    longer than a download's deadline: they must fail clearly (ENOSPC) within it rather than wait for space."""
    hold = ctx.download_deadline + rng.uniform(5.0, 10.0)
    return _fill(ctx, "fill_disk_long", hold, leave=rng.randint(1, 3) << 20)


def _fill(ctx: FaultContext, kind: str, hold: float, leave: int = 0) -> FaultRecord:
    peer = ctx.fill_peer
    assert peer is not None and peer.data_dir is not None
    record = FaultRecord(kind, peer.role, ctx.ledger.now())
    junk = peer.data_dir / "soak-junk.fill"
    written = 0
    fd = os.open(junk, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        block = b"\xa5" * (1 << 20)
        while True:
            try:
                written += os.write(fd, block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(block) == 1:
                    break
                block = block[: len(block) // 2]
        if leave:
            written = max(0, written - leave)
            os.ftruncate(fd, written)
        os.close(fd)
        fd = -1
        time.sleep(hold)
    finally:
        if fd >= 0:
            os.close(fd)
        junk.unlink(missing_ok=True)
    record.duration = ctx.ledger.now() - record.started
    record.detail = f"{written >> 20} MiB junk, {leave >> 20} MiB left free, for {hold:.1f}s"
    return record


def trickle_parent(ctx: FaultContext, rng: random.Random) -> FaultRecord:
    """Slow a dfdaemon (a parent of the others) to a trickle: SIGSTOP 300 ms / SIGCONT 60 ms for a few seconds."""
    peer = rng.choice(ctx.cluster.peers)
    record = FaultRecord("trickle_parent", peer.role, ctx.ledger.now())
    length = rng.uniform(4.0, 10.0)
    end = time.monotonic() + length
    try:
        while time.monotonic() < end:
            peer.stopped = True
            peer.signal(signal.SIGSTOP)
            time.sleep(0.3)
            peer.signal(signal.SIGCONT)
            peer.stopped = False
            time.sleep(0.06)
    finally:
        peer.signal(signal.SIGCONT)
        peer.stopped = False
    record.duration = ctx.ledger.now() - record.started
    record.detail = f"stopped 83% of {length:.1f}s"
    return record


def garbage(ctx: FaultContext, rng: random.Random) -> FaultRecord:
    """Garbage to every port of every Dandelion process; each must still answer afterwards."""
    record = FaultRecord("garbage", "all ports", ctx.ledger.now())
    services = [s for s in ctx.cluster.services.values() if s.kind in ("supernode", "peer", "seed")]
    sent, codes = send_garbage(services, rng)
    if ctx.strict_grpc and codes.get("UNKNOWN"):
        ctx.violation(f"{codes['UNKNOWN']} junk gRPC requests got UNKNOWN (an unhandled exception), not a clear status")
    for service in services:
        deadline = time.monotonic() + 10
        while not service.ready():
            if time.monotonic() > deadline:
                ctx.violation(f"{service.role} stopped answering after garbage ({sent})")
                break
            time.sleep(0.2)
    record.duration = ctx.ledger.now() - record.started
    record.detail = sent
    return record


def cut_client_fault(ctx: FaultContext, rng: random.Random) -> FaultRecord:
    """A client's blob download through a mirror is cut mid-blob; it resumes with Range and checks the digest."""
    node = rng.choice(ctx.cluster.peers)
    image = rng.choice(ctx.images)
    index = rng.randrange(len(image.layer_digests))
    record = FaultRecord("cut_client", node.role, ctx.ledger.now())
    record.detail = cut_client(ctx.ledger, node, image, index, rng)
    record.duration = ctx.ledger.now() - record.started
    return record


INJECTORS: dict[str, Callable[[FaultContext, random.Random], FaultRecord]] = {
    "kill_peer": kill_peer,
    "kill_seed": kill_role("kill_seed", "seed"),
    "kill_supernode": kill_role("kill_supernode", "supernode"),
    "restart_origin": restart_service("restart_origin", "origin"),
    "restart_registry": restart_service("restart_registry", "registry"),
    "fill_disk": fill_disk,
    "fill_disk_long": fill_disk_long,
    "cut_client": cut_client_fault,
    "trickle_parent": trickle_parent,
    "garbage": garbage,
}
