"""A seed peer's cached copy offered to the swarm (its order names content it holds already): the task registered,
every piece with its digest and the content's shape on the stream's first message, and the stream closed."""

from __future__ import annotations

import asyncio

from dfcommon import piecedigest
from peer.download import link
from peer.download.link import Registrant, SwarmLink
from peer.scheduler_cluster import SchedulerClient
from peer.storage import TaskStore


async def announce(scheduler: SchedulerClient, who: Registrant, store: TaskStore, deadline_s: float) -> str:
    """Register the task (at who.prefer, the supernode that ordered it, while it answers; else at the task's owner)
    and offer every piece of the complete store; returns the peer id."""
    peer_id, _, _ = await link.register(scheduler, who, deadline_s)
    held = await asyncio.to_thread(piece_digests, store)
    assert who.supernode is not None, "registered"
    stream = SwarmLink(who.supernode, peer_id, lambda _event: None)
    stream.open(0, held, (store.meta.content_length, store.meta.piece_size))
    await stream.close()  # the supernode reads the first message before the end of the stream
    return peer_id


def piece_digests(store: TaskStore) -> list[tuple[int, str]]:
    """Every piece with the digest it was stored with, or (stored before digests were kept) its BLAKE3 now."""
    held = []
    for number in range(store.meta.piece_count):
        digest = store.piece_digest(number)
        if not digest:
            offset, size = store.span(number)
            digest = piecedigest.digest_of("blake3", [store.read(offset, size)])
        held.append((number, digest))
    return held
