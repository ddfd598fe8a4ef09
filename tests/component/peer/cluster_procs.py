"""Helpers of the cluster tests: supernodes on loopback addresses of their own, where a task is scheduled (asked of
each supernode with ListTasks), the owner rendezvous hashing gives it, and the stalls a peer's log shows."""

from __future__ import annotations

import hashlib
import itertools
import re
from datetime import datetime
from pathlib import Path

import grpc
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from fixtures.processes import ManagedProcess, ProcessGroup, console_script, free_port


def start_supernode_at(
    group: ProcessGroup, workdir: Path, name: str, ip: str, *extra: str, port: int = 0
) -> tuple[str, ManagedProcess]:
    """A supernode listening on ip:port (default a free one), advertising ip."""
    port = port or free_port(ip)
    argv = [console_script("supernode"), "--listen", f"{ip}:{port}", "--advertise-ip", ip]
    proc = group.start(name, [*argv, "--data-dir", str(workdir / name), *extra])
    proc.wait_for_tcp(ip, port, timeout=30)
    return f"{ip}:{port}", proc


def rendezvous_owner(task_id: str, members: list[str]) -> str:
    """The owner by the definition of highest-random-weight hashing, written out independently of the product:
    the member with the largest first 8 bytes (big-endian) of SHA-256("task_id NUL member")."""
    return max(members, key=lambda m: int.from_bytes(hashlib.sha256(f"{task_id}\0{m}".encode()).digest()[:8], "big"))


def tasks_on(address: str) -> dict[str, scheduler_pb2.TaskInfo]:
    """Every task the supernode at address schedules (ListTasks: inspection answers callers on loopback)."""
    found: dict[str, scheduler_pb2.TaskInfo] = {}
    with grpc.insecure_channel(address) as chan:
        stub = scheduler_pb2_grpc.SchedulerServiceStub(chan)
        token = ""
        while True:
            reply = stub.ListTasks(scheduler_pb2.ListTasksRequest(page_token=token), timeout=10)
            found.update((task.task_id, task) for task in reply.tasks)
            token = reply.next_page_token
            if not token:
                return found


def scheduled_on(addresses: list[str], task_id: str) -> list[str]:
    """The supernodes (of addresses) that know the task."""
    return [address for address in addresses if task_id in tasks_on(address)]


def get_task(address: str, task_id: str) -> scheduler_pb2.GetTaskResponse:
    """GetTask at the supernode."""
    with grpc.insecure_channel(address) as chan:
        reply: scheduler_pb2.GetTaskResponse = scheduler_pb2_grpc.SchedulerServiceStub(chan).GetTask(
            scheduler_pb2.GetTaskRequest(task_id=task_id), timeout=10
        )
        return reply


def host_ips(address: str) -> set[str]:
    """The addresses of the hosts registered with the supernode (ListHosts)."""
    with grpc.insecure_channel(address) as chan:
        reply = scheduler_pb2_grpc.SchedulerServiceStub(chan).ListHosts(scheduler_pb2.ListHostsRequest(), timeout=10)
        return {host.ip for host in reply.hosts}


LINE_TIME = re.compile(r"^(\S+) \w+ [\w-]+: (.*)$")


def longest_piece_gap(log: str, task_id: str) -> float:
    """The longest time (s) between two pieces this peer's log shows it received for the task (debug lines)."""
    times = []
    for line in log.splitlines():
        match = LINE_TIME.match(line)
        if match and re.match(rf"task={task_id[:12]} piece \d+ from \S+ ok=True", match.group(2)):
            times.append(datetime.fromisoformat(match.group(1)).timestamp())
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)
