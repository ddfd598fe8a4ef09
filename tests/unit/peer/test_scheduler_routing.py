"""Routing a task's calls over the supernode links (peer.scheduler_cluster): the task's ring over the members that
answer, those marked down last, a seed peer's ordering supernode first while it answers."""

from __future__ import annotations

from dandelion.scheduler.v1 import scheduler_pb2

from dfcommon import ring
from peer.scheduler_cluster import SchedulerClient

MEMBERS = ["127.0.0.71:8002", "127.0.0.72:8002", "127.0.0.73:8002"]
TASKS = [f"{n:064x}" for n in range(50)]


def client() -> SchedulerClient:
    return SchedulerClient(MEMBERS, scheduler_pb2.HostInfo(ip="127.0.0.9", port=1))


def addresses(cluster: SchedulerClient, task_id: str, prefer: str = "") -> list[str]:
    return [link.address for link in cluster.route(task_id, prefer)]


def test_a_link_per_member_and_the_route_is_the_tasks_ring() -> None:
    cluster = client()
    assert list(cluster.links) == MEMBERS
    for task_id in TASKS:
        assert addresses(cluster, task_id) == ring.ranked(task_id, MEMBERS)


def test_a_member_marked_down_is_tried_last_and_back_in_place_when_it_answers() -> None:
    cluster = client()
    down = cluster.links[MEMBERS[1]]
    down.mark_down("test")
    assert not down.up and down.host_id == ""
    for task_id in TASKS:
        ranked = ring.ranked(task_id, MEMBERS)
        assert addresses(cluster, task_id) == [*(m for m in ranked if m != MEMBERS[1]), MEMBERS[1]]
    down.up = True
    assert all(addresses(cluster, task_id) == ring.ranked(task_id, MEMBERS) for task_id in TASKS)


def test_the_preferred_supernode_comes_first_only_while_it_answers() -> None:
    cluster = client()
    task_id = TASKS[0]
    last = ring.ranked(task_id, MEMBERS)[-1]
    assert addresses(cluster, task_id, prefer=last)[0] == last
    cluster.links[last].mark_down("test")
    assert addresses(cluster, task_id, prefer=last) == ring.ranked(task_id, MEMBERS)
