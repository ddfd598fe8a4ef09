"""A peer that holds every piece of content with a digest hears the seed's verdict before its stream ends.

The seed offers its last piece a moment before it has checked the whole digest; a fast peer can hold every
piece in that moment. Its stream must stay open until the seed is done, so the peer gets TaskInfo SUCCEEDED (and
need not hash the content again) or FAILED. The seed's fetch job is driven by hand here (no network)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

from dfcommon.content import ContentRequest
from supernode.config import SupernodeConfig
from supernode.hosts import HostSpec
from supernode.resource.piece import PieceMeta, PieceReport
from supernode.resource.task import TaskState
from supernode.seed.cdn import FetchJob
from supernode.seed.origin import FetchResult
from supernode.streams import StreamEnd, StreamEvent, TaskChanged
from supernode.swarm import Swarm

PIECE = 1024
BODY = bytes(range(256)) * 12  # three pieces
DIGEST = "sha256:" + hashlib.sha256(BODY).hexdigest()


class HandDrivenCdn:
    """Stands in for the seed's Cdn: jobs start, and the test reports what the fetch does."""

    def __init__(self) -> None:
        self.jobs: dict[str, FetchJob] = {}
        self.store: Any = None

    def start(self, task_id: str, url: str, digest: str, request: ContentRequest) -> FetchJob:
        job = FetchJob(task_id)
        self.jobs[task_id] = job
        return job


def pieces() -> list[PieceMeta]:
    return [
        PieceMeta(n, n * PIECE, PIECE, "sha256:" + hashlib.sha256(BODY[n * PIECE : (n + 1) * PIECE]).hexdigest())
        for n in range(3)
    ]


def drain(outbox: asyncio.Queue[StreamEvent]) -> list[StreamEvent]:
    events = []
    while not outbox.empty():
        events.append(outbox.get_nowait())
    return events


async def peer_holding_everything(tmp_path: Path, digest: str) -> tuple[Swarm, str, asyncio.Queue[StreamEvent]]:
    """A swarm whose seed has offered every piece (but is not done), and a peer that reported them all."""
    cdn = HandDrivenCdn()
    swarm = Swarm(
        SupernodeConfig(data_dir=tmp_path, advertise_ip="127.0.0.1", origin_fetch="seed"), lambda _swarm: cdn, 8002
    )  # type: ignore[arg-type,return-value]
    host_id = swarm.register_host(HostSpec("h", "127.0.0.2", 65000, 4, ""))
    registering = asyncio.ensure_future(
        swarm.register_task(host_id, ContentRequest(url="http://o/blob", digest=digest))
    )
    await asyncio.sleep(0)
    (job,) = cdn.jobs.values()
    swarm.seed_answered(job.task_id, len(BODY), PIECE)
    job.answered.set()
    task, peer = await registering
    outbox = swarm.open_stream(peer.peer_id, 8, [])
    for piece in pieces():
        swarm.seed_piece(task.task_id, piece)
    drain(outbox)
    swarm.stream_update(peer.peer_id, outbox, 0, [PieceReport(n, task.seed_peer_id, True) for n in range(3)])
    return swarm, task.task_id, outbox


async def test_stream_stays_open_until_the_seed_checked_the_digest(tmp_path: Path) -> None:
    swarm, tid, outbox = await peer_holding_everything(tmp_path, DIGEST)
    assert not any(isinstance(event, StreamEnd) for event in drain(outbox))  # the seed is still RUNNING
    swarm.seed_done(tid, FetchResult(len(BODY), PIECE, pieces(), DIGEST.split(":")[1]))
    events = drain(outbox)
    changed = [event for event in events if isinstance(event, TaskChanged)]
    assert changed and changed[-1].task.state is TaskState.SUCCEEDED and changed[-1].task.digest == DIGEST
    assert isinstance(events[-1], StreamEnd) and events[-1].error is None
    assert events.index(changed[-1]) < len(events) - 1  # the verdict comes before the end


async def test_content_without_digest_ends_at_once(tmp_path: Path) -> None:
    _swarm, _tid, outbox = await peer_holding_everything(tmp_path, "")
    events = drain(outbox)
    assert isinstance(events[-1], StreamEnd) and events[-1].error is None
