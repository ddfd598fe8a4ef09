"""What the supernode remembers at most: tasks (--max-tasks), peers in one task (--max-peers-per-task) and hosts
(--max-hosts). A registration beyond a limit is refused with RESOURCE_EXHAUSTED and a one-line message naming the
limit and its flag (the dfdaemon then reads the origin); a new task first makes room by forgetting the oldest idle
task (swarm.py). Refusals and evictions are counted by resource, the limits exported as gauges (dfcommon.metrics).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc

from dfcommon.errors import DandelionError
from dfcommon.metrics import LIMIT_EVICTIONS, LIMIT_REFUSALS, LIMITS
from dfcommon.ratelog import RateLimitedLog
from supernode.config import SupernodeConfig

log = logging.getLogger(__name__)
quiet = RateLimitedLog(log)  # a full supernode refuses many: one line per resource per 10 s

TASKS, PEERS_PER_TASK, HOSTS = "tasks", "peers_per_task", "hosts"  # the resource label of the metrics
FLAGS = {TASKS: "--max-tasks", PEERS_PER_TASK: "--max-peers-per-task", HOSTS: "--max-hosts"}


class LimitReached(DandelionError):
    """A registration the supernode has no room for."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


@dataclass(frozen=True)
class Limits:
    """The configured limits; checks count each refusal."""

    tasks: int
    peers_per_task: int
    hosts: int

    @classmethod
    def of(cls, config: SupernodeConfig) -> Limits:
        """The limits of a configuration."""
        return cls(config.max_tasks, config.max_peers_per_task, config.max_hosts)

    def export(self) -> None:
        """Set the dandelion_limit gauges."""
        for resource, value in ((TASKS, self.tasks), (PEERS_PER_TASK, self.peers_per_task), (HOSTS, self.hosts)):
            LIMITS.labels(resource).set(value)

    def check_host(self, hosts: int) -> None:
        """LimitReached when another host would exceed --max-hosts."""
        if hosts >= self.hosts:
            raise refused(HOSTS, f"the supernode holds {hosts} hosts, its limit")

    def check_peer(self, peers: int, task_id: str) -> None:
        """LimitReached when another peer in the task would exceed --max-peers-per-task."""
        if peers >= self.peers_per_task:
            raise refused(PEERS_PER_TASK, f"task {task_id[:12]} has {peers} peers, the limit per task")

    def task_refused(self, tasks: int) -> LimitReached:
        """The error for a new task when every one of the tasks held has a peer in it."""
        return refused(TASKS, f"the supernode holds {tasks} tasks, its limit, each with a peer in it")


def refused(resource: str, why: str) -> LimitReached:
    """Count a refusal and make its one-line error."""
    LIMIT_REFUSALS.labels(resource).inc()
    error = LimitReached(f"{why} ({FLAGS[resource]})")
    quiet.warning(f"limit:{resource}", f"registration refused, RESOURCE_EXHAUSTED: {error}")
    return error


def evicted(resource: str = TASKS) -> None:
    """Count an idle task forgotten early to make room."""
    LIMIT_EVICTIONS.labels(resource).inc()
