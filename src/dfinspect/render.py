"""What dfinspect prints: the inspection answers as plain dicts (for --json) and as text tables for people."""

from __future__ import annotations

from typing import Any

from dandelion.common.v1 import common_pb2
from dandelion.scheduler.v1 import scheduler_pb2

from dfcommon.piecemap import DEFAULT_WIDTH, bitmap_mask, runs_text, strip

SHORT_ID = 12  # ids as the logs print them


def state_name(enum: Any, value: int, prefix: str) -> str:
    """An enum value's name without its prefix ("RUNNING"); the number when unknown."""
    try:
        name: str = enum.Name(value)
    except ValueError:
        return str(value)
    return name.removeprefix(prefix)


def task_state(value: int) -> str:
    """TASK_STATE_RUNNING -> RUNNING."""
    return state_name(common_pb2.TaskState, value, "TASK_STATE_")


def peer_state(value: int) -> str:
    """PEER_STATE_BACK_TO_SOURCE -> BACK_TO_SOURCE."""
    return state_name(common_pb2.PeerState, value, "PEER_STATE_")


def human_bytes(count: int) -> str:
    """1536 -> "1.5 KiB"; a negative count (length not known yet) -> "?"."""
    if count < 0:
        return "?"
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"


# Plain dicts ----------------------------------------------------------------------------


def task_dict(task: scheduler_pb2.TaskInfo) -> dict[str, Any]:
    """A task's metadata."""
    return {
        "task_id": task.task_id,
        "url": task.url,
        "digest": task.digest,
        "state": task_state(task.state),
        "content_length": task.content_length,
        "piece_size": task.piece_size,
        "piece_count": task.piece_count,
        "seed_pieces": task.seed_pieces,
        "peer_count": task.peer_count,
        "error": task.error,
    }


def peer_dict(
    peer: scheduler_pb2.PeerInfo, piece_count: int, width: int = DEFAULT_WIDTH, hostname: str = ""
) -> dict[str, Any]:
    """A peer of a task with its host's name, its piece map as a strip and as runs of piece numbers."""
    mask = bitmap_mask(peer.pieces)
    return {
        "peer_id": peer.peer_id,
        "host_id": peer.address.host_id,
        "hostname": hostname,
        "address": f"{peer.address.ip}:{peer.address.port}",
        "state": peer_state(peer.state),
        "is_seed": peer.is_seed,
        "piece_count": peer.piece_count,
        "pieces": runs_text(mask),
        "piece_map": strip(mask, piece_count, width),
        "uploads_ok": peer.uploads_ok,
        "uploads_failed": peer.uploads_failed,
    }


def task_detail_dict(
    reply: scheduler_pb2.GetTaskResponse, width: int = DEFAULT_WIDTH, hostnames: dict[str, str] | None = None
) -> dict[str, Any]:
    """GetTask's answer: the task and its peers, the seed first (hostnames: host id -> name, from ListHosts)."""
    count = reply.task.piece_count
    names = hostnames or {}
    peers = sorted(reply.peers, key=lambda p: (not p.is_seed, p.address.ip, p.address.port, p.peer_id))
    return {
        "task": task_dict(reply.task),
        "peers": [peer_dict(p, count, width, names.get(p.address.host_id, "")) for p in peers],
    }


def host_dict(host: scheduler_pb2.HostInfo) -> dict[str, Any]:
    """A registered host."""
    return {
        "host_id": host.host_id,
        "hostname": host.hostname,
        "address": f"{host.ip}:{host.port}",
        "upload_slots": host.upload_slots,
        "location": host.location,
        "idle_seconds": round(host.idle_seconds, 3),
        "seed": host.seed,
    }


# Text -----------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns, the last one unpadded."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def tasks_text(tasks: list[dict[str, Any]]) -> str:
    """The task list."""
    if not tasks:
        return "no tasks"
    rows = [
        [
            t["task_id"][:SHORT_ID],
            t["state"],
            f"{t['seed_pieces']}/{t['piece_count']}",
            str(t["peer_count"]),
            human_bytes(t["content_length"]),
            t["url"],
        ]
        for t in tasks
    ]
    return table(["TASK", "STATE", "SEED", "PEERS", "SIZE", "URL"], rows)


def task_detail_text(detail: dict[str, Any]) -> str:
    """One task and its swarm, each peer's pieces as a strip (# held, + most, - some, . none)."""
    task = detail["task"]
    lines = [
        f"task     {task['task_id']}",
        f"url      {task['url']}",
        f"state    {task['state']}" + (f"  error: {task['error']}" if task["error"] else ""),
        f"size     {human_bytes(task['content_length'])} in {task['piece_count']} pieces of "
        f"{human_bytes(task['piece_size'])}",
    ]
    if task["digest"]:
        lines.append(f"digest   {task['digest']}")
    peers = task["peer_count"]
    plural = "" if peers == 1 else "s"
    lines.append(f"seed     {task['seed_pieces']}/{task['piece_count']} pieces; {peers} peer{plural}")
    lines.append("")
    rows = [
        [
            p["peer_id"][:SHORT_ID] + (" (seed)" if p["is_seed"] else ""),
            p["hostname"] or "-",
            p["address"],
            p["state"],
            f"{p['piece_count']}/{task['piece_count']}",
            f"{p['uploads_ok']}/{p['uploads_failed']}",
            f"[{p['piece_map']}]",
        ]
        for p in detail["peers"]
    ]
    lines.append(table(["PEER", "HOST", "ADDRESS", "STATE", "PIECES", "UP OK/FAIL", "MAP"], rows))
    return "\n".join(lines)


def hosts_text(hosts: list[dict[str, Any]]) -> str:
    """The host list."""
    if not hosts:
        return "no hosts"
    rows = [
        [
            h["host_id"][:SHORT_ID],
            h["hostname"],
            h["address"],
            "seed peer" if h.get("seed") else "peer",
            str(h["upload_slots"]),
            f"{h['idle_seconds']:.1f}s",
            h["location"] or "-",
        ]
        for h in hosts
    ]
    return table(["HOST", "HOSTNAME", "ADDRESS", "ROLE", "SLOTS", "IDLE", "LOCATION"], rows)
