"""The web view's JSON: tasks with their peers and piece strips, hosts with their rates, read from the scheduler."""

from __future__ import annotations

from typing import Any

from dfcommon.piecemap import strip
from supernode.resource.host import Host
from supernode.resource.peer import Peer, PeerState
from supernode.resource.task import Task
from supernode.scheduling.scheduler import Scheduler
from supernode.web.sampler import Sampler

# The page redraws every second: bounded, it stays light in a browser (the busiest tasks and the least advanced
# peers first; the page says how many it leaves out).
MAX_TASKS = 50
MAX_PEERS = 100  # per task
STRIP_WIDTH = 64
ACTIVE = (PeerState.RUNNING, PeerState.BACK_TO_SOURCE)


def peer_view(task: Task, peer: Peer) -> dict[str, Any]:
    """One peer of a task."""
    count = task.piece_count
    return {
        "peer_id": peer.peer_id,
        "host_id": peer.host.host_id,
        "hostname": peer.host.hostname,
        "address": peer.host.address,
        "state": peer.state.name,
        "is_seed": peer.host.seed_peer,
        "pieces": peer.held_count,
        "percent": round(100 * peer.held_count / count, 1) if count else 0.0,
        "strip": strip(peer.held, count, STRIP_WIDTH),
        "uploads_ok": peer.uploads_ok,
    }


def task_view(task: Task, sampler: Sampler) -> dict[str, Any]:
    """One task with its swarm, seed peers first, then the least advanced peers."""
    flow = sampler.flow(task.task_id)
    peers = sorted(task.peers.values(), key=lambda p: (not p.host.seed_peer, p.held_count, p.host.address))
    return {
        "task_id": task.task_id,
        "url": task.url,
        "state": task.state.name,
        "content_length": task.content_length,
        "piece_size": task.piece_size,
        "piece_count": task.piece_count,
        "origin_bytes": flow.origin_bytes,
        "peer_bytes": flow.peer_bytes,
        "origin_share": round(flow.origin_share, 4),
        "peer_total": len(task.peers),
        "peers": [peer_view(task, p) for p in peers[:MAX_PEERS]],
    }


def host_view(host: Host, sampler: Sampler) -> dict[str, Any]:
    """One host and its rates."""
    received, sent = sampler.rates(host.host_id)
    return {
        "host_id": host.host_id,
        "hostname": host.hostname,
        "address": host.address,
        "is_seed": host.seed_peer,
        "peers": len(host.peer_ids),
        "recv_bps": round(received),
        "send_bps": round(sent),
    }


def _busy(task: Task) -> tuple[bool, int]:
    """Sort key: tasks some peer is still downloading first, then the larger swarms."""
    active = any(not p.host.seed_peer and p.state in ACTIVE for p in task.peers.values())
    return not active, -len(task.peers)


def swarm_view(scheduler: Scheduler, sampler: Sampler) -> dict[str, Any]:
    """Everything the page shows."""
    tasks = sorted(scheduler.tasks.values(), key=lambda t: (*_busy(t), t.url))
    hosts = sorted(scheduler.hosts.values(), key=lambda h: (not h.seed_peer, h.address, h.host_id))
    return {
        "tasks": [task_view(t, sampler) for t in tasks[:MAX_TASKS]],
        "tasks_total": len(tasks),
        "hosts": [host_view(h, sampler) for h in hosts],
    }
