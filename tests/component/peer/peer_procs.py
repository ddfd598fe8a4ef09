"""Starting dfdaemon processes for the peer's component tests."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from fixtures.processes import ManagedProcess, ProcessGroup, console_script, free_port


@dataclass
class Daemon:
    """A running dfdaemon."""

    proc: ManagedProcess
    ip: str
    port: int
    socket: Path
    data_dir: Path

    @property
    def endpoint(self) -> str:
        """Its DaemonService endpoint for dfget --daemon."""
        return f"unix:{self.socket}"


def start_daemon(
    group: ProcessGroup, workdir: Path, name: str, ip: str, supernodes: str, *extra: str, port: int | None = None
) -> Daemon:
    """Start dfdaemon on ip:port (default: a free one) with its socket in workdir, mirror off."""
    port = port or free_port(ip)
    sock = workdir / f"{name}.sock"
    data = workdir / name
    argv = [
        console_script("dfdaemon"),
        *("--supernode", supernodes, "--listen", ip, "--port", str(port), "--data-dir", str(data)),
        *("--daemon-listen", f"unix:{sock}", "--mirror", "off", "--log-level", "debug", *extra),
    ]
    proc = group.start(name, argv)
    proc.wait_for_tcp(ip, port, timeout=30)
    proc.wait_for_unix(sock, timeout=30)
    return Daemon(proc, ip, port, sock, data)


def start_dfget(group: ProcessGroup, *args: str) -> subprocess.Popen[str]:
    """Start dfget in the background (the group kills it if the test leaves it running); its stderr is piped."""
    argv = [console_script("dfget"), *args]
    return group.adopt(
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    )


def dfget(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run dfget and capture its output."""
    return subprocess.run(
        [console_script("dfget"), *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
