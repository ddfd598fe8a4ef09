"""origin_fetch "peer": the first peer of content with a digest fetches the origin; the seed copies from it.

The seed's fetch jobs are driven by hand (no network): these tests pin down who is told to fetch the origin, when
the seed starts its copy and from whom, and what happens when the source peer fails or leaves.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

from dfcommon.address import PeerAddress
from dfcommon.content import ContentRequest
from dfcommon.errors import Unavailable
from supernode.config import SupernodeConfig
from supernode.resource.peer import PeerState
from supernode.seed.cdn import FetchJob
from supernode.seed.store import SeedStore
from supernode.swarm import GoToSource, HostSpec, StreamEvent, Swarm, TaskChanged

DIGEST = "sha256:" + hashlib.sha256(b"layer").hexdigest()
REQUEST = ContentRequest(url="http://registry/v2/ns/img/blobs/" + DIGEST, headers={"Authorization": "x"}, digest=DIGEST)


class HandDrivenCdn:
    """Stands in for the seed's Cdn: records each job and where it copies from."""

    def __init__(self, store: SeedStore) -> None:
        self.jobs: dict[str, FetchJob] = {}
        self.sources: list[PeerAddress | None] = []
        self.take_overs: list[bool] = []
        self.store = store

    def start(
        self,
        task_id: str,
        url: str,
        digest: str,
        request: ContentRequest,
        source: PeerAddress | None = None,
        take_over: bool = False,
    ) -> FetchJob:
        job = FetchJob(task_id)
        self.jobs[task_id] = job
        self.sources.append(source)
        self.take_overs.append(take_over)
        return job


def new_swarm(tmp_path: Path, **config: Any) -> tuple[Swarm, HandDrivenCdn]:
    cdn = HandDrivenCdn(SeedStore(tmp_path))
    swarm = Swarm(
        SupernodeConfig(data_dir=tmp_path, advertise_ip="127.0.0.1", **config),
        lambda _swarm: cdn,  # type: ignore[arg-type,return-value]
        8002,
    )
    return swarm, cdn


def host(swarm: Swarm, n: int) -> str:
    return swarm.register_host(HostSpec(f"h{n}", f"127.0.0.{n}", 65000 + n, 4, ""))


def drain(outbox: asyncio.Queue[StreamEvent]) -> list[StreamEvent]:
    events = []
    while not outbox.empty():
        events.append(outbox.get_nowait())
    return events


async def test_first_peer_fetches_the_origin_and_the_next_one_starts_the_seeds_copy_from_it(tmp_path: Path) -> None:
    swarm, cdn = new_swarm(tmp_path)
    task, first = await asyncio.wait_for(swarm.register_task(host(swarm, 2), REQUEST), 1)
    assert first.state is PeerState.BACK_TO_SOURCE and task.source_peer_id == first.peer_id
    assert cdn.jobs == {}, "the seed must not fetch the origin as well"
    events = drain(swarm.open_stream(first.peer_id, 16, []))
    assert isinstance(events[0], TaskChanged)
    assert any(isinstance(e, GoToSource) for e in events)

    # A second host: the seed copies from the first peer, and the registration returns without waiting for it.
    _, second = await asyncio.wait_for(swarm.register_task(host(swarm, 3), REQUEST), 1)
    assert second.state is PeerState.RUNNING
    assert cdn.sources == [PeerAddress(first.peer_id, "127.0.0.2", 65002)]
    assert cdn.take_overs == [True], "the first peer is still fetching: the seed may take that over"
    outbox = swarm.open_stream(second.peer_id, 16, [])
    assert not any(isinstance(e, GoToSource) for e in drain(outbox))

    # The first peer hands the origin fetch over: it is the source no more, and registers again as a plain peer.
    swarm.source_handed_over(task.task_id, first.peer_id)
    assert task.source_peer_id == ""
    swarm.leave_task(first.peer_id)
    registering = asyncio.ensure_future(swarm.register_task(host(swarm, 2), REQUEST))
    await asyncio.sleep(0)
    assert len(cdn.sources) == 1, "the seed's origin fetch serves it"
    registering.cancel()


async def test_the_seed_copies_a_finished_source_after_the_delay(tmp_path: Path) -> None:
    swarm, cdn = new_swarm(tmp_path, seed_copy_delay=0.05)
    _task, first = await swarm.register_task(host(swarm, 2), REQUEST)
    swarm.report_result(first.peer_id, True, "", 0, 5, 10)
    assert cdn.jobs == {}
    await asyncio.sleep(0.2)
    assert cdn.sources == [PeerAddress(first.peer_id, "127.0.0.2", 65002)]
    assert cdn.take_overs == [False], "a finished source is copied"


async def test_a_failed_or_departed_source_hands_the_origin_to_the_next_peer(tmp_path: Path) -> None:
    swarm, cdn = new_swarm(tmp_path)
    task, first = await swarm.register_task(host(swarm, 2), REQUEST)
    swarm.report_result(first.peer_id, False, "origin said 500", 0, 0, 10)
    _, second = await asyncio.wait_for(swarm.register_task(host(swarm, 3), REQUEST), 1)
    assert second.state is PeerState.BACK_TO_SOURCE and task.source_peer_id == second.peer_id
    swarm.leave_task(second.peer_id)
    third_host = host(swarm, 4)
    _, third = await asyncio.wait_for(swarm.register_task(third_host, REQUEST), 1)
    assert task.source_peer_id == third.peer_id
    swarm.leave_host(third_host)  # its host goes away with it
    _, fourth = await asyncio.wait_for(swarm.register_task(host(swarm, 5), REQUEST), 1)
    assert task.source_peer_id == fourth.peer_id
    assert cdn.jobs == {}
    assert list(swarm._source_requests) == [task.task_id]  # only the live source's request is kept


async def test_a_copy_that_failed_drops_the_source(tmp_path: Path) -> None:
    swarm, _cdn = new_swarm(tmp_path)
    task, first = await swarm.register_task(host(swarm, 2), REQUEST)
    await swarm.register_task(host(swarm, 3), REQUEST)
    swarm.source_failed(task.task_id, first.peer_id, Unavailable("content does not match the digest"))
    assert task.source_peer_id == ""


async def test_content_without_a_digest_and_origin_fetch_seed_go_through_the_seed(tmp_path: Path) -> None:
    swarm, cdn = new_swarm(tmp_path)
    registering = asyncio.ensure_future(swarm.register_task(host(swarm, 2), ContentRequest(url="http://o/file")))
    await asyncio.sleep(0)
    assert cdn.sources == [None]
    registering.cancel()

    swarm, cdn = new_swarm(tmp_path, origin_fetch="seed")
    registering = asyncio.ensure_future(swarm.register_task(host(swarm, 2), REQUEST))
    await asyncio.sleep(0)
    assert cdn.sources == [None]
    registering.cancel()


async def test_content_in_the_seeds_cache_is_served_from_there(tmp_path: Path) -> None:
    swarm, cdn = new_swarm(tmp_path)
    task = swarm._task_for(REQUEST)
    cdn.store.meta_path(task.task_id).write_text("{}")
    registering = asyncio.ensure_future(swarm.register_task(host(swarm, 2), REQUEST))
    await asyncio.sleep(0)
    assert cdn.sources == [None], "the seed's job loads its cache"
    registering.cancel()


async def test_a_source_whose_copy_matched_becomes_a_parent_of_every_piece(tmp_path: Path) -> None:
    swarm, _cdn = new_swarm(tmp_path)
    task, first = await swarm.register_task(host(swarm, 2), REQUEST)
    _, second = await swarm.register_task(host(swarm, 3), REQUEST)
    swarm.seed_answered(task.task_id, 10 << 20, 4 << 20)
    assert first.held_count == 0
    swarm.source_holds(task.task_id, first.peer_id)
    assert first.held_count == 3 and task.peer_servable == 0b111
    # A source that failed meanwhile is not offered.
    swarm.report_result(second.peer_id, False, "", 0, 0, 1)
    swarm.source_holds(task.task_id, second.peer_id)
    assert second.held_count == 0
