"""A mutual-TLS cluster of real processes on loopback (certificates: fixtures.certs)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from fixtures.certs import Identity
from fixtures.processes import ManagedProcess, ProcessGroup, console_script, free_port
from grpc_health.v1 import health_pb2, health_pb2_grpc


def healthy(target: str, who: Identity | None, timeout: float = 3.0) -> bool:
    """True when grpc.health.v1 answers SERVING to who (None: plaintext)."""
    with who.channel(target) if who else grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


@dataclass
class Node:
    """A running supernode or dfdaemon."""

    process: ManagedProcess
    ip: str
    port: int
    socket: Path | None = None

    @property
    def target(self) -> str:
        """HOST:PORT of its gRPC server."""
        return f"{self.ip}:{self.port}"


def start_supernode(group: ProcessGroup, base: Path, who: Identity | None, *extra: str, name: str = "sn") -> Node:
    """A supernode on 127.0.0.1 with who's certificate (None: plaintext), healthy."""
    port = free_port("127.0.0.1")
    tls = who.flags() if who else []
    argv = [
        console_script("supernode"),
        *("--listen", f"127.0.0.1:{port}", "--advertise-ip", "127.0.0.1"),
        *("--data-dir", str(base / name)),
        *tls,
        *extra,
    ]
    proc = group.start(name, argv)
    proc.wait_until(lambda: healthy(f"127.0.0.1:{port}", who), "gRPC health SERVING", timeout=30)
    return Node(proc, "127.0.0.1", port)


def start_dfdaemon(
    group: ProcessGroup, base: Path, ip: str, supernode: Node, who: Identity | None, extra: Sequence[str] = ()
) -> Node:
    """A dfdaemon on ip with who's certificate (None: plaintext), its PeerService and dfget socket up."""
    port = free_port(ip)
    data = base / f"peer-{ip}"
    sock = data / "dfdaemon.sock"
    argv = [
        console_script("dfdaemon"),
        *("--supernode", supernode.target, "--listen", ip, "--port", str(port)),
        *("--data-dir", str(data), "--daemon-listen", f"unix:{sock}", "--mirror", "off"),
        *(who.flags() if who else []),
        *extra,
    ]
    proc = group.start(f"dfdaemon-{ip}", argv)
    proc.wait_for_tcp(ip, port, timeout=30)
    proc.wait_for_unix(sock, timeout=30)
    return Node(proc, ip, port, sock)


def dfget(url: str, output: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run dfget to its end."""
    argv = [console_script("dfget"), url, "-o", str(output), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def dfget_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run dfget with these arguments (e.g. `preheat ...`) to its end."""
    return subprocess.run([console_script("dfget"), *args], capture_output=True, text=True, timeout=timeout)


def grpcurl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run grpcurl (a connection it cannot make fails within 5 s)."""
    argv = [console_script("grpcurl"), "-connect-timeout", "5", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
