"""Bounded memory: a task no peer is left in is forgotten after --task-ttl.

The clock is injected (no network, no timers): each test moves the clock and calls forget_idle_tasks(), as the
supernode's timer does once per heartbeat interval.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pytest

from dfcommon.content import ContentRequest
from dfcommon.errors import InvalidArgument
from supernode.config import SupernodeConfig
from supernode.flags import build_parser, from_args
from supernode.hosts import HostSpec
from supernode.swarm import Swarm

TTL = 600.0
DIGEST = "sha256:" + hashlib.sha256(b"layer").hexdigest()


class Clock:
    """A hand-driven clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def new_swarm(tmp_path: Path, **config: Any) -> tuple[Swarm, Clock]:
    clock = Clock()
    swarm = Swarm(SupernodeConfig(data_dir=tmp_path, advertise_ip="127.0.0.1", task_ttl=TTL, **config), clock)
    return swarm, clock


def host(swarm: Swarm, n: int) -> str:
    return swarm.register_host(HostSpec(f"h{n}", f"127.0.0.{n}", 65000 + n, 4, ""))


def request(n: int) -> ContentRequest:
    digest = "sha256:" + hashlib.sha256(b"%d" % n).hexdigest()
    return ContentRequest(url=f"http://registry/v2/img/blobs/{digest}", digest=digest)


async def test_a_task_whose_peers_left_is_forgotten_after_the_ttl_and_not_before(tmp_path: Path) -> None:
    swarm, clock = new_swarm(tmp_path)
    hid = host(swarm, 2)
    kept, stays = await swarm.register_task(hid, request(1))
    gone, left = await swarm.register_task(hid, request(2))
    swarm.open_stream(left.peer_id, 16, [])
    swarm.leave_task(left.peer_id)
    clock.now += TTL - 1
    assert swarm.forget_idle_tasks() == 0
    assert gone.task_id in swarm.scheduler.tasks
    clock.now += 1
    assert swarm.forget_idle_tasks() == 1
    assert set(swarm.scheduler.tasks) == {kept.task_id}, "the task with a peer stays, however long"
    assert set(swarm.scheduler.peers) == {stays.peer_id}
    assert not swarm.scheduler.idle


async def test_a_task_whose_host_stopped_heart_beating_is_forgotten(tmp_path: Path) -> None:
    swarm, clock = new_swarm(tmp_path, heartbeat_interval_ms=1000)
    hid = host(swarm, 2)
    task, peer = await swarm.register_task(hid, request(1))
    swarm.report_result(peer.peer_id, False, "gave up", 0, 0, 1)  # FAILED, never leaves: its host goes silent
    clock.now += 3.5
    swarm.hosts.sweep()
    assert not swarm.scheduler.hosts and not swarm.scheduler.peers and task.task_id in swarm.scheduler.tasks
    clock.now += TTL
    assert swarm.forget_idle_tasks() == 1
    assert not swarm.scheduler.tasks


async def test_the_ttl_counts_from_the_last_peer_leaving(tmp_path: Path) -> None:
    swarm, clock = new_swarm(tmp_path)
    task, first = await swarm.register_task(host(swarm, 2), request(1))
    clock.now += TTL / 2
    _, second = await swarm.register_task(host(swarm, 3), request(1))
    swarm.leave_task(first.peer_id)
    clock.now += TTL
    assert swarm.forget_idle_tasks() == 0, "one peer is still in the task"
    swarm.leave_task(second.peer_id)
    clock.now += TTL - 1
    assert swarm.forget_idle_tasks() == 0
    clock.now += 1
    assert swarm.forget_idle_tasks() == 1 and task.task_id not in swarm.scheduler.tasks


async def test_a_preheat_awaiting_a_seed_peer_keeps_the_task(tmp_path: Path) -> None:
    swarm, clock = new_swarm(tmp_path)
    seed = swarm.register_host(HostSpec("seed", "127.0.0.9", 65009, 8, "", seed=True))
    orders = swarm.hosts.open_orders(seed)
    preheat = asyncio.ensure_future(swarm.preheat(request(1)))
    await asyncio.sleep(0)
    order = orders.get_nowait()
    assert order is not None
    clock.now += 2 * TTL
    assert swarm.forget_idle_tasks() == 0, "the preheat waits for the seed peer"
    preheat.cancel()
    await asyncio.gather(preheat, return_exceptions=True)
    clock.now += TTL - 1
    assert swarm.forget_idle_tasks() == 0, "kept for a whole ttl after the preheat was seen waiting"
    clock.now += 1
    assert swarm.forget_idle_tasks() == 1 and order.task_id not in swarm.scheduler.tasks


async def test_thousands_of_tasks_registered_and_left_leave_nothing_behind(tmp_path: Path) -> None:
    swarm, clock = new_swarm(tmp_path)
    hid = host(swarm, 2)
    for n in range(3000):
        _, peer = await swarm.register_task(hid, request(n))
        swarm.open_stream(peer.peer_id, 16, [])
        swarm.leave_task(peer.peer_id)
        clock.now += 0.125  # task n left at 1000 + n/8
    assert len(swarm.scheduler.tasks) == 3000
    clock.now += TTL - 187.5625  # now 1375 + that: the first 1500 tasks are idle for a whole ttl, the others not yet
    assert swarm.forget_idle_tasks() == 1500
    clock.now += 188
    assert swarm.forget_idle_tasks() == 1500
    assert not swarm.scheduler.tasks and not swarm.scheduler.idle and not swarm.streams.queues
    assert set(swarm.scheduler.hosts) == {hid}
    assert not swarm.scheduler.peers


@pytest.mark.parametrize(
    ("flag", "seconds"), [(None, 600.0), ("90s", 90.0), ("10m", 600.0), ("2h", 7200.0), ("0.5", 0.5)]
)
def test_the_task_ttl_flag(flag: str | None, seconds: float) -> None:
    args = ["--data-dir", "d"] + (["--task-ttl", flag] if flag else [])
    assert from_args(build_parser().parse_args(args)).task_ttl == seconds


@pytest.mark.parametrize(
    ("flag", "fragment"),
    [("soon", "invalid duration"), ("-5s", "not negative"), ("nan", "not negative"), ("0", "task ttl"), ("31d", "ttl")],
)
def test_a_bad_task_ttl_is_one_line(flag: str, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        from_args(build_parser().parse_args(["--data-dir", "d", f"--task-ttl={flag}"]))
    assert fragment in str(caught.value) and "\n" not in str(caught.value)
