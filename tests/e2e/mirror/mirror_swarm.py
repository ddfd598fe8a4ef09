"""A supernode and dfdaemons with registry mirrors, each peer on its own 127.0.0.N, as real processes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from fixtures.clients import loopback_env, short_dir
from fixtures.processes import ManagedProcess, console_script, free_port, start_process

# Peers live on 127.0.0.11 ... so they never share an address with the supernode or the registries.
FIRST_PEER_OCTET = 11


@dataclass
class MirrorNode:
    """One dfdaemon: gRPC on ip:port, registry mirror on ip:mirror_port."""

    name: str
    ip: str
    port: int
    mirror_port: int
    data_dir: Path
    proc: ManagedProcess = field(repr=False)

    @property
    def mirror_addr(self) -> str:
        """host:port of the mirror, as a registry name."""
        return f"{self.ip}:{self.mirror_port}"

    @property
    def mirror_url(self) -> str:
        """Base URL of the mirror."""
        return f"http://{self.mirror_addr}"

    def client(self, **kwargs: object) -> httpx.Client:
        """An HTTP client for the mirror (no proxies from the environment)."""
        return httpx.Client(base_url=self.mirror_url, trust_env=False, timeout=60, **kwargs)  # type: ignore[arg-type]


@dataclass
class MirrorSwarm:
    """A running supernode and its dfdaemons; stop() ends them all by PID."""

    supernode_addr: str
    supernode: ManagedProcess
    nodes: list[MirrorNode]

    def stop(self) -> None:
        """Stop the dfdaemons, then the supernode."""
        for node in reversed(self.nodes):
            node.proc.stop()
        self.supernode.stop()

    def logs(self) -> str:
        """The tail of every process log (for failure messages)."""
        parts = [f"--- supernode\n{self.supernode.tail(30)}"]
        parts += [f"--- {node.name}\n{node.proc.tail(30)}" for node in self.nodes]
        return "\n".join(parts)


def start_supernode(workdir: Path, extra_args: Sequence[str] = ()) -> tuple[str, ManagedProcess]:
    """Start a supernode on 127.0.0.1:<free port>; return its address and process."""
    port = free_port("127.0.0.1")
    argv = [
        console_script("supernode"),
        *("--listen", f"127.0.0.1:{port}", "--data-dir", str(workdir / "supernode")),
        *("--advertise-ip", "127.0.0.1"),
        *extra_args,
    ]
    proc = start_process("supernode", argv, workdir / "supernode.log", env=loopback_env())
    try:
        proc.wait_for_tcp("127.0.0.1", port, timeout=30)
    except BaseException:
        proc.stop()
        raise
    return f"127.0.0.1:{port}", proc


def start_dfdaemon(
    workdir: Path,
    name: str,
    ip: str,
    supernode_addr: str,
    registry_url: str,
    socket_dir: Path,
    extra_args: Sequence[str] = (),
) -> MirrorNode:
    """Start a dfdaemon on ip with its mirror on ip:<free port> in front of registry_url.

    Its dfget socket goes in socket_dir (a short path: never the shared default under /run).
    """
    port, mirror_port = free_port(ip), free_port(ip)
    data_dir = workdir / name
    argv = [
        console_script("dfdaemon"),
        *("--supernode", supernode_addr, "--listen", ip, "--port", str(port)),
        *("--data-dir", str(data_dir), "--daemon-listen", f"unix:{socket_dir / name}.sock"),
        *("--mirror", f"{ip}:{mirror_port}", "--registry", registry_url),
        *extra_args,
    ]
    proc = start_process(name, argv, workdir / f"{name}.log", env=loopback_env())
    try:
        proc.wait_for_tcp(ip, port, timeout=30)
        proc.wait_for_tcp(ip, mirror_port, timeout=30)
    except BaseException:
        proc.stop()
        raise
    return MirrorNode(name, ip, port, mirror_port, data_dir, proc)


@contextlib.contextmanager
def run_mirror_swarm(
    workdir: Path,
    registry_url: str,
    nodes: int = 1,
    extra_args: Sequence[str] = (),
    supernode_args: Sequence[str] = (),
) -> Iterator[MirrorSwarm]:
    """A supernode plus `nodes` dfdaemons (127.0.0.11, .12, ...) mirroring registry_url."""
    workdir.mkdir(parents=True, exist_ok=True)
    with short_dir("dfm-") as socket_dir:
        supernode_addr, supernode = start_supernode(workdir, supernode_args)
        swarm = MirrorSwarm(supernode_addr, supernode, [])
        try:
            for index in range(nodes):
                ip = f"127.0.0.{FIRST_PEER_OCTET + index}"
                name = f"dfdaemon-{index + 1}"
                swarm.nodes.append(
                    start_dfdaemon(workdir, name, ip, supernode_addr, registry_url, socket_dir, extra_args)
                )
            yield swarm
        finally:
            swarm.stop()
