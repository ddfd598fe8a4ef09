"""A real swarm on loopback for end-to-end tests: one supernode, dfdaemons on 127.0.0.N, dfget runs."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from fixtures.processes import ManagedProcess, ProcessGroup, console_script, free_port
from grpc_health.v1 import health_pb2, health_pb2_grpc


@dataclass
class SupernodeHandle:
    """A running supernode."""

    process: ManagedProcess
    port: int
    data_dir: Path
    host: str = "127.0.0.1"

    @property
    def target(self) -> str:
        """HOST:PORT for gRPC clients and --supernode flags."""
        return f"{self.host}:{self.port}"


@dataclass
class PeerHandle:
    """A running dfdaemon."""

    name: str
    process: ManagedProcess
    ip: str
    port: int
    data_dir: Path
    socket: Path
    args: list[str] = field(default_factory=list)

    @property
    def daemon_endpoint(self) -> str:
        """The DaemonService endpoint dfget talks to."""
        return f"unix:{self.socket}"

    @property
    def target(self) -> str:
        """HOST:PORT of its PeerService."""
        return f"{self.ip}:{self.port}"

    def data_files(self) -> list[Path]:
        """Every stored task data file under the data dir (layout: .../<task>/data)."""
        return sorted(p for p in self.data_dir.rglob("data") if p.is_file())


def grpc_healthy(target: str, timeout: float = 3.0) -> bool:
    """True if grpc.health.v1 reports SERVING at target ("HOST:PORT" or "unix:PATH")."""
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


class Swarm:
    """Starts supernodes, dfdaemons and dfget runs as real processes of one ProcessGroup."""

    def __init__(self, group: ProcessGroup, base_dir: Path) -> None:
        """Keep processes in group and state under base_dir."""
        self.group = group
        self.base_dir = base_dir
        self.supernode: SupernodeHandle | None = None
        self.peers: dict[str, PeerHandle] = {}

    def start_supernode(self, extra_args: Sequence[str] = (), port: int | None = None) -> SupernodeHandle:
        """Start (or restart on the same port and data dir) the supernode and wait until it is healthy."""
        previous = self.supernode
        port = port or (previous.port if previous else free_port("127.0.0.1"))
        data_dir = previous.data_dir if previous else self.base_dir / "supernode"
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            console_script("supernode"),
            "--listen",
            f"127.0.0.1:{port}",
            "--data-dir",
            str(data_dir),
            "--advertise-ip",
            "127.0.0.1",
            *extra_args,
        ]
        proc = self.group.start("supernode", argv)
        proc.wait_for_tcp("127.0.0.1", port, timeout=30)
        proc.wait_until(lambda: grpc_healthy(f"127.0.0.1:{port}"), "gRPC health SERVING", timeout=30)
        self.supernode = SupernodeHandle(process=proc, port=port, data_dir=data_dir)
        return self.supernode

    def start_peer(self, ip: str, extra_args: Sequence[str] = (), name: str | None = None) -> PeerHandle:
        """Start a dfdaemon listening on ip:<free port> with its own data dir and socket; wait until both serve."""
        assert self.supernode is not None, "start the supernode first"
        name = name or f"dfdaemon-{ip}"
        port = free_port(ip)
        data_dir = self.base_dir / name
        data_dir.mkdir(parents=True, exist_ok=True)
        sock = data_dir / "dfdaemon.sock"
        argv = [
            console_script("dfdaemon"),
            "--supernode",
            self.supernode.target,
            "--listen",
            ip,
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--daemon-listen",
            f"unix:{sock}",
            "--mirror",
            "off",
            *extra_args,
        ]
        proc = self.group.start(name, argv)
        proc.wait_for_tcp(ip, port, timeout=30)
        proc.wait_for_unix(sock, timeout=30)
        peer = PeerHandle(name=name, process=proc, ip=ip, port=port, data_dir=data_dir, socket=sock, args=argv)
        self.peers[name] = peer
        return peer

    def dfget_argv(self, url: str, output: Path, peer: PeerHandle | None, *args: str) -> list[str]:
        """The dfget command line for url → output through peer's daemon (or standalone with the supernode)."""
        argv = [console_script("dfget"), url, "-o", str(output)]
        if peer is not None:
            argv += ["--daemon", peer.daemon_endpoint]
        elif self.supernode is not None:
            argv += ["--supernode", self.supernode.target]
        return [*argv, *args]

    def dfget(
        self, url: str, output: Path, peer: PeerHandle | None, *args: str, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        """Run dfget to completion and return its result (stdout/stderr as text)."""
        return subprocess.run(
            self.dfget_argv(url, output, peer, *args), capture_output=True, text=True, timeout=timeout
        )

    def dfget_start(self, url: str, output: Path, peer: PeerHandle | None, *args: str) -> subprocess.Popen[str]:
        """Start dfget in the background (wait with finish(); the group kills it at teardown if still running)."""
        return self.group.adopt(
            subprocess.Popen(
                self.dfget_argv(url, output, peer, *args),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )

    def scheduler(self, channel: grpc.Channel) -> scheduler_pb2_grpc.SchedulerServiceStub:
        """A SchedulerService stub on channel."""
        return scheduler_pb2_grpc.SchedulerServiceStub(channel)

    def get_task(self, task_id: str) -> scheduler_pb2.GetTaskResponse:
        """The supernode's view of a task (peers, their pieces and upload counts)."""
        assert self.supernode is not None
        with grpc.insecure_channel(self.supernode.target) as channel:
            reply: scheduler_pb2.GetTaskResponse = self.scheduler(channel).GetTask(
                scheduler_pb2.GetTaskRequest(task_id=task_id), timeout=10
            )
        return reply

    def list_tasks(self) -> list[scheduler_pb2.TaskInfo]:
        """Every task the supernode knows."""
        assert self.supernode is not None
        with grpc.insecure_channel(self.supernode.target) as channel:
            reply = self.scheduler(channel).ListTasks(scheduler_pb2.ListTasksRequest(), timeout=10)
        return list(reply.tasks)

    def task_for_url(self, url: str) -> scheduler_pb2.TaskInfo:
        """The supernode's task whose URL is url (AssertionError if none)."""
        for task in self.list_tasks():
            if task.url == url:
                return task
        raise AssertionError(f"supernode has no task for {url}")

    def wait_hosts(self, count: int, timeout: float = 20) -> None:
        """Wait until at least count hosts registered with the supernode."""
        assert self.supernode is not None
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.supernode.target) as channel:
            stub = self.scheduler(channel)
            while True:
                hosts = stub.ListHosts(scheduler_pb2.ListHostsRequest(), timeout=5).hosts
                if len(hosts) >= count:
                    return
                if time.monotonic() > deadline:
                    raise AssertionError(f"only {len(hosts)} of {count} hosts registered")
                time.sleep(0.1)


def finish(proc: subprocess.Popen[str], timeout: float = 240) -> tuple[int, str, str]:
    """Wait for a background dfget; returns (exit status, stdout, stderr); kills it on timeout."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return -9, out, err + "\n(timed out)"
    return proc.returncode, out, err
