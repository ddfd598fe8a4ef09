"""The soak's cluster as roles → restartable processes: supernode, dfdaemons, origin, registry.

Only public surfaces: command lines, TCP ports, gRPC health, /metrics. A role keeps its ports and data dir
across restarts. "seed" is a role too: the first seed peer (a dfdaemon with --seed) when the soak runs any (the
supernode then runs with --no-seed-peer), else the supernode's process (its in-process seed peer).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from fixtures.clients import loopback_env
from fixtures.processes import ManagedProcess, console_script, free_port, start_process, tcp_accepts
from grpc_health.v1 import health_pb2, health_pb2_grpc

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
# role name used by fault injectors → the Service that plays it when no service has that role
ROLE_ALIASES = {"seed": "supernode"}
FIRST_PEER_OCTET = 11
FIRST_SEED_OCTET = 5
# Throttled so that transfers take a while and faults land in the middle of them.
PEER_UPLOAD_LIMIT = "20M"  # bytes/s each dfdaemon serves to other peers
ORIGIN_RATE = 4_000_000  # bytes/s per origin response


@dataclass(frozen=True)
class Port:
    """One listening port of a service and what speaks on it."""

    host: str
    port: int
    protocol: str  # "grpc" | "http" | "metrics"


def grpc_serving(target: str, timeout: float = 2.0) -> bool:
    """True if grpc.health.v1 says SERVING at target."""
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


@dataclass
class Service:
    """A long-running process of the cluster that the driver may kill, stop and restart."""

    role: str
    kind: str  # "supernode" | "peer" | "seed" | "origin" | "registry"
    argv: list[str]
    log_path: Path
    ports: list[Port]
    data_dir: Path | None = None
    socket: Path | None = None  # dfget's endpoint of a dfdaemon
    ip: str = "127.0.0.1"
    proc: ManagedProcess | None = None
    incarnation: int = 0
    down_since: float | None = None  # set while the driver holds it down
    stopped: bool = False  # SIGSTOPped by the driver
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def pid(self) -> int | None:
        """The PID of the running incarnation, None when down."""
        return self.proc.pid if self.proc is not None and self.proc.alive() else None

    def port(self, protocol: str) -> Port:
        """The first port speaking protocol."""
        return next(p for p in self.ports if p.protocol == protocol)

    @property
    def metrics_url(self) -> str | None:
        """http URL of /metrics, if the service serves it."""
        found = [p for p in self.ports if p.protocol == "metrics"]
        return f"http://{found[0].host}:{found[0].port}/metrics" if found else None

    def ready(self) -> bool:
        """Every port accepts and gRPC health (if any) says SERVING."""
        for port in self.ports:
            if not tcp_accepts(port.host, port.port):
                return False
            if port.protocol == "grpc" and not grpc_serving(f"{port.host}:{port.port}"):
                return False
        return self.socket is None or self.socket.exists()

    def start(self, timeout: float = 45.0) -> None:
        """Start a new incarnation and wait until it is ready."""
        env = loopback_env()
        self.proc = start_process(self.role, self.argv, self.log_path, env=env)
        self.incarnation += 1
        self.proc.wait_until(self.ready, "ready", timeout=timeout)
        self.down_since = None

    def kill(self) -> None:
        """SIGKILL the running incarnation (continuing it first if stopped) and reap it."""
        with self.lock:
            proc = self.proc
            if proc is None:
                return
            self.down_since = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.popen.wait(timeout=30)
        self.stopped = False

    def signal(self, signum: int) -> None:
        """Send signum to the process (not its group: dfdaemon has no helpers)."""
        pid = self.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def stop(self) -> None:
        """Stop for good at the end of the run (SIGCONT first, then SIGTERM, then SIGKILL)."""
        if self.proc is not None:
            if self.stopped:
                self.signal(signal.SIGCONT)
                self.stopped = False
            self.proc.stop()


@dataclass
class Cluster:
    """Every service by role, plus the files and images the workload fetches."""

    base: Path
    socket_dir: Path
    services: dict[str, Service] = field(default_factory=dict)

    def add(self, service: Service) -> Service:
        """Register a service under its role."""
        self.services[service.role] = service
        return service

    def role(self, name: str) -> Service:
        """The service playing role name ('seed': the first seed peer, else the supernode)."""
        return self.services[name] if name in self.services else self.services[ROLE_ALIASES.get(name, name)]

    @property
    def seeds(self) -> list[Service]:
        """The seed peers."""
        return [s for s in self.services.values() if s.kind == "seed"]

    @property
    def peers(self) -> list[Service]:
        """The dfdaemons."""
        return [s for s in self.services.values() if s.kind == "peer"]

    @property
    def supernode(self) -> Service:
        """The supernode."""
        return self.services["supernode"]

    def start_all(self) -> None:
        """Start every service in registration order."""
        for service in self.services.values():
            service.start()

    def stop_all(self) -> None:
        """Stop every service, newest role first."""
        for service in reversed(list(self.services.values())):
            service.stop()


def supernode_service(cluster: Cluster, extra: Sequence[str] = ()) -> Service:
    """The supernode: gRPC on 127.0.0.1, /metrics next to it, 1 MiB pieces so a few-MiB file has several."""
    host = "127.0.0.1"
    grpc_port, metrics_port = free_port(host), free_port(host)
    data = cluster.base / "supernode"
    argv = [
        console_script("supernode"),
        *("--listen", f"{host}:{grpc_port}", "--data-dir", str(data), "--advertise-ip", host),
        *("--metrics", f"{host}:{metrics_port}", "--piece-size", "1MiB"),
        *extra,
    ]
    ports = [Port(host, grpc_port, "grpc"), Port(host, metrics_port, "metrics")]
    return Service("supernode", "supernode", argv, cluster.base / "logs" / "supernode.log", ports, data_dir=data)


def peer_service(cluster: Cluster, index: int, registry_url: str, extra: Sequence[str] = ()) -> Service:
    """dfdaemon number index on 127.0.0.(11+index): PeerService, mirror and /metrics on its own address."""
    ip = f"127.0.0.{FIRST_PEER_OCTET + index}"
    role = f"peer-{index + 1}"
    grpc_port, mirror_port, metrics_port = free_port(ip), free_port(ip), free_port(ip)
    data = cluster.base / role
    data.mkdir(parents=True, exist_ok=True)
    sock = cluster.socket_dir / f"{role}.sock"
    argv = [
        console_script("dfdaemon"),
        *("--supernode", f"127.0.0.1:{cluster.supernode.port('grpc').port}"),
        *("--listen", ip, "--port", str(grpc_port), "--data-dir", str(data)),
        *("--daemon-listen", f"unix:{sock}", "--mirror", f"{ip}:{mirror_port}", "--registry", registry_url),
        *("--metrics", f"{ip}:{metrics_port}", "--upload-slots", "4", "--upload-limit", PEER_UPLOAD_LIMIT),
        *extra,
    ]
    ports = [Port(ip, grpc_port, "grpc"), Port(ip, mirror_port, "http"), Port(ip, metrics_port, "metrics")]
    return Service(role, "peer", argv, cluster.base / "logs" / f"{role}.log", ports, data, sock, ip)


def seed_service(cluster: Cluster, index: int, extra: Sequence[str] = ()) -> Service:
    """Seed peer number index (a dfdaemon with --seed, no mirror) on 127.0.0.(5+index); role "seed" for the first,
    "seed-2", ... for the others."""
    ip = f"127.0.0.{FIRST_SEED_OCTET + index}"
    role = "seed" if index == 0 else f"seed-{index + 1}"
    grpc_port, metrics_port = free_port(ip), free_port(ip)
    data = cluster.base / role
    data.mkdir(parents=True, exist_ok=True)
    sock = cluster.socket_dir / f"{role}.sock"
    argv = [
        console_script("dfdaemon"),
        *("--seed", "--supernode", f"127.0.0.1:{cluster.supernode.port('grpc').port}"),
        *("--listen", ip, "--port", str(grpc_port), "--data-dir", str(data)),
        *("--daemon-listen", f"unix:{sock}", "--mirror", "off", "--metrics", f"{ip}:{metrics_port}"),
        *("--upload-slots", "4", "--upload-limit", PEER_UPLOAD_LIMIT),
        *extra,
    ]
    ports = [Port(ip, grpc_port, "grpc"), Port(ip, metrics_port, "metrics")]
    return Service(role, "seed", argv, cluster.base / "logs" / f"{role}.log", ports, data, sock, ip)


def origin_service(cluster: Cluster, root: Path) -> Service:
    """The origin HTTP server (tests/fixtures/origin.py) with a bytes-per-path log that survives restarts."""
    host = "127.0.0.1"
    port = free_port(host)
    argv = [
        sys.executable,
        str(FIXTURES / "origin.py"),
        *("--root", str(root), "--host", host, "--port", str(port)),
        *("--stats-log", str(cluster.base / "origin-bytes.log"), "--rate", str(ORIGIN_RATE)),
    ]
    return Service("origin", "origin", argv, cluster.base / "logs" / "origin.log", [Port(host, port, "http")])


def registry_service(cluster: Cluster, config_path: Path, log_path: Path, host: str, port: int) -> Service:
    """Debian's docker-registry serving config_path; its access log (all incarnations) goes to log_path."""
    argv = ["docker-registry", "serve", str(config_path)]
    return Service("registry", "registry", argv, log_path, [Port(host, port, "http")])


def mount_tmpfs(path: Path, size_mib: int) -> None:
    """Mount a small tmpfs on path (the peer whose disk the driver fills)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "soak-tmpfs", str(path)], check=True)


def unmount(path: Path) -> None:
    """Lazily unmount path (best effort at teardown)."""
    subprocess.run(["umount", "--lazy", str(path)], capture_output=True, timeout=30)


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
    """Poll predicate until True or timeout; returns the last result."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)
