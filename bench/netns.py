"""Hosts with their own addresses and shaped uplinks: network namespaces joined by a bridge in its own namespace.

Nothing is added to the root namespace: the bridge lives in a namespace of its own, each veth pair is
created inside that namespace with its far end moved straight into the host's namespace, and every
address (10.77.0.N/24) exists only inside the namespaces. Egress shaping is `tc ... tbf` on a host's eth0.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

IP_BIN = "ip"
TC_BIN = "tc"
BRIDGE_DEVICE = "br0"


class NetnsError(RuntimeError):
    """A namespace, link or qdisc could not be set up."""


@dataclass(frozen=True)
class NetHost:
    """One namespace with one address on the bridge; uplink_mbit None means unshaped."""

    netns: str
    ip: str
    uplink_mbit: int | None = None

    def argv(self, command: Sequence[str]) -> list[str]:
        """command run inside this namespace (`ip netns exec` execs it, so the PID stays the command's)."""
        return [IP_BIN, "netns", "exec", self.netns, *command]


def _run(argv: Sequence[str]) -> None:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: {result.stderr.strip() or result.returncode}")


def existing_namespaces() -> set[str]:
    """Names of the network namespaces under /run/netns."""
    result = subprocess.run([IP_BIN, "netns", "list"], capture_output=True, text=True, timeout=30, check=True)
    return {line.split()[0] for line in result.stdout.splitlines() if line.strip()}


def _delete_namespaces(names: Sequence[str]) -> list[str]:
    """Delete these namespaces (their veths go with them); return the errors, if any."""
    errors: list[str] = []
    present = existing_namespaces()
    for name in names:
        if name in present:
            result = subprocess.run([IP_BIN, "netns", "delete", name], capture_output=True, text=True, timeout=30)
            if result.returncode != 0:
                errors.append(f"ip netns delete {name}: {result.stderr.strip()}")
    return errors


@contextmanager
def bridged_hosts(bridge_netns: str, hosts: Sequence[NetHost], prefix_len: int = 24) -> Iterator[list[NetHost]]:
    """Create bridge_netns with a bridge and one namespace per host linked to it; delete them all after.

    Refuses to start if any of the names already exists (it might be someone else's).
    """
    names = [bridge_netns, *(host.netns for host in hosts)]
    clash = sorted(set(names) & existing_namespaces())
    if clash:
        raise NetnsError(f"network namespaces already exist: {', '.join(clash)} (delete them if they are leftovers)")
    created: list[str] = []
    try:
        for name in names:
            _run([IP_BIN, "netns", "add", name])
            created.append(name)
            _run([IP_BIN, "-n", name, "link", "set", "lo", "up"])
        _run([IP_BIN, "-n", bridge_netns, "link", "add", BRIDGE_DEVICE, "type", "bridge"])
        _run([IP_BIN, "-n", bridge_netns, "link", "set", BRIDGE_DEVICE, "up"])
        for index, host in enumerate(hosts):
            port = f"veth{index}"
            # Created inside the bridge's namespace, the peer end moved at once into the host's: never in root.
            _run([IP_BIN, "-n", bridge_netns, "link", "add", port, "type", "veth", "peer", "name", "eth0"])
            _run([IP_BIN, "-n", bridge_netns, "link", "set", "eth0", "netns", host.netns])
            _run([IP_BIN, "-n", bridge_netns, "link", "set", port, "master", BRIDGE_DEVICE, "up"])
            _run([IP_BIN, "-n", host.netns, "addr", "add", f"{host.ip}/{prefix_len}", "dev", "eth0"])
            _run([IP_BIN, "-n", host.netns, "link", "set", "eth0", "up"])
            if host.uplink_mbit is not None:
                rate = f"{host.uplink_mbit}mbit"
                _run(
                    [
                        *(TC_BIN, "-n", host.netns, "qdisc", "add", "dev", "eth0", "root", "tbf"),
                        *("rate", rate, "burst", "256kb", "latency", "50ms"),
                    ]
                )
        yield list(hosts)
    finally:
        errors = _delete_namespaces(list(reversed(created)))
        if errors:
            raise NetnsError("; ".join(errors))


def tx_bytes(host: NetHost, device: str = "eth0") -> int:
    """Bytes sent so far on device inside host's namespace (its uplink)."""
    result = subprocess.run(
        [IP_BIN, "-n", host.netns, "-j", "-s", "link", "show", device], capture_output=True, text=True, timeout=30
    )
    if result.returncode != 0:
        raise NetnsError(f"ip -n {host.netns} link show {device}: {result.stderr.strip()}")
    return int(json.loads(result.stdout)[0]["stats64"]["tx"]["bytes"])


def listening_in(host: NetHost, ip: str, port: int) -> bool:
    """True if a socket in host's namespace listens on ip:port or on any address; no connection is made.

    Reads /proc/net/tcp and /proc/net/tcp6 (an IPv4 address may be bound through an IPv6 socket, as gRPC does).
    """
    result = subprocess.run(
        host.argv(["cat", "/proc/net/tcp", "/proc/net/tcp6"]), capture_output=True, text=True, timeout=10
    )
    if result.returncode != 0:
        raise NetnsError(f"reading /proc/net/tcp in {host.netns}: {result.stderr.strip()}")
    v4 = _hex_ip(ip)
    wanted = {v4, "00000000", "0000000000000000FFFF0000" + v4, "0" * 32}
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[3] == "0A" and ":" in fields[1]:  # 0A: TCP_LISTEN
            address, _, hex_port = fields[1].partition(":")
            if int(hex_port, 16) == port and address in wanted:
                return True
    return False


def _hex_ip(ip: str) -> str:
    """An IPv4 address as /proc/net/tcp writes it (little-endian hex)."""
    return "".join(f"{int(octet):02X}" for octet in reversed(ip.split(".")))


def wait_tcp_in(host: NetHost, ip: str, port: int, alive: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait until something listens on ip:port in host's namespace; alive() false or timeout raises."""
    deadline = time.monotonic() + timeout
    while not listening_in(host, ip, port):
        if not alive():
            raise NetnsError(f"process for {ip}:{port} in {host.netns} exited before listening")
        if time.monotonic() >= deadline:
            raise NetnsError(f"nothing listening on {ip}:{port} in {host.netns} after {timeout:.0f}s")
        time.sleep(0.1)
