"""A peer whose stream never opens (its registration's answer was lost): as the task's reader it is replaced
before the others give up on the swarm, and it is forgotten in the end. Driven by hand (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_supernode_source_peer import (
    LENGTH,
    PIECE,
    REQUEST,
    Clock,
    assigned,
    drain,
    host,
    new_swarm,
    offered,
    piece_digest,
    reads_for_swarm,
)

from dfcommon.errors import NotFound
from supernode.readers import OriginAnswer
from supernode.resource.peer import PeerState
from supernode.streams import GoToSource
from supernode.unopened import PEER_OPEN_S, READER_OPEN_S


async def test_a_reader_whose_stream_never_opens_is_replaced_by_a_connected_peer(tmp_path: Path) -> None:
    clock = Clock()
    swarm = new_swarm(tmp_path, clock)
    task, lost = await swarm.register_task(host(swarm, 2), REQUEST)  # its answer never reached its host
    assert task.source_peer_id == lost.peer_id
    _, waiting = await swarm.register_task(host(swarm, 3), REQUEST)
    box = swarm.open_stream(waiting.peer_id, 16, [])
    drain(box)

    clock.now += READER_OPEN_S - 1
    swarm.unopened.sweep(clock())
    assert task.source_peer_id == lost.peer_id and not drain(box), "a stream may still be on its way"

    clock.now += 1
    swarm.unopened.sweep(clock())
    assert task.source_peer_id == waiting.peer_id
    assert drain(box) == [reads_for_swarm(())], "the connected peer reads the origin for the swarm"
    swarm.stream_update(waiting.peer_id, box, 0, [offered(0)], OriginAnswer(LENGTH, PIECE))

    # The lost peer's stream opens after all: a plain peer, given the piece the new reader stored.
    late = swarm.open_stream(lost.peer_id, 16, [])
    events = drain(late)
    assert lost.state is PeerState.RUNNING and not any(isinstance(e, GoToSource) for e in events)
    assert assigned(events) == [(0, waiting.peer_id, piece_digest(0))]


async def test_a_reader_without_a_stream_is_read_for_by_the_next_peer_when_none_is_connected(tmp_path: Path) -> None:
    clock = Clock()
    swarm = new_swarm(tmp_path, clock)
    task, _ = await swarm.register_task(host(swarm, 2), REQUEST)
    clock.now += READER_OPEN_S
    swarm.unopened.sweep(clock())
    assert not task.source_peer_id
    _, next_peer = await swarm.register_task(host(swarm, 3), REQUEST)
    assert task.source_peer_id == next_peer.peer_id and next_peer.state is PeerState.BACK_TO_SOURCE


async def test_a_peer_whose_stream_never_opens_is_forgotten_and_one_that_opened_is_kept(tmp_path: Path) -> None:
    clock = Clock()
    swarm = new_swarm(tmp_path, clock)
    task, reader = await swarm.register_task(host(swarm, 2), REQUEST)
    swarm.open_stream(reader.peer_id, 16, [])
    _, lost = await swarm.register_task(host(swarm, 3), REQUEST)
    clock.now += PEER_OPEN_S - 1
    swarm.unopened.sweep(clock())
    assert lost.peer_id in task.peers and task.source_peer_id == reader.peer_id, "a reader with a stream stays"

    clock.now += 1
    swarm.unopened.sweep(clock())
    assert lost.peer_id not in task.peers and reader.peer_id in task.peers
    assert not swarm.unopened.since
    with pytest.raises(NotFound):  # a stream hopelessly late: its host registers the task again
        swarm.open_stream(lost.peer_id, 16, [])


async def test_peers_that_left_before_opening_are_no_longer_awaited(tmp_path: Path) -> None:
    clock = Clock()
    swarm = new_swarm(tmp_path, clock)
    _, peer = await swarm.register_task(host(swarm, 2), REQUEST)
    swarm.leave_task(peer.peer_id)
    clock.now += READER_OPEN_S
    swarm.unopened.sweep(clock())
    assert not swarm.unopened.since
