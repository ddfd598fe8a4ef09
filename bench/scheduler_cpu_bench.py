"""The supernode's scheduling work per piece report, in-process (prints figures, not a test).

One hot task: --peers simulated peers on hosts of their own, --pieces pieces, window --window, a reader that offers
every piece with its digest. Each round every peer with assignments reports them all fetched (a SyncPieces message
per peer, as `Swarm.stream_update` gets it from the rpc layer), until every peer holds every piece. No gRPC, no
protobuf, no network: the CPU seconds per report are the swarm's own (scheduler, hosts, readers, outboxes), the
part of `bench/hot_task_bench.py`'s figure that the code here decides. --repeat runs, each in a new swarm.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import tempfile
import time
from pathlib import Path

from dfcommon.content import ContentRequest
from supernode.config import SupernodeConfig
from supernode.hosts import HostSpec
from supernode.readers import OriginAnswer
from supernode.resource.piece import PieceReport
from supernode.streams import Assigned, StreamEvent
from supernode.swarm import Swarm

PIECE = 1 << 20


def drain(outbox: asyncio.Queue[StreamEvent]) -> list[tuple[int, str]]:
    """(piece, parent peer id) of every assignment waiting in an outbox."""
    out = []
    while not outbox.empty():
        event = outbox.get_nowait()
        if isinstance(event, Assigned):
            out.extend((a.piece.number, a.parent.peer_id) for a in event.assignments)
    return out


async def run(peers: int, pieces: int, window: int, data_dir: Path) -> tuple[int, float, float]:
    """(reports, CPU seconds, wall seconds) of one swarm from the reader's offers until every peer is complete."""
    swarm = Swarm(SupernodeConfig(data_dir=data_dir, advertise_ip="127.0.0.1"), time.monotonic)
    digest = "sha256:" + hashlib.sha256(b"hot").hexdigest()
    request = ContentRequest(url=f"http://origin/v2/hot/blobs/{digest}", digest=digest)

    def register(n: int) -> str:
        return swarm.register_host(HostSpec(f"h{n}", f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", 9000, 4, ""))

    task, reader = await swarm.register_task(register(0), request)
    reader_box = swarm.open_stream(reader.peer_id, window, [])
    swarm.stream_update(reader.peer_id, reader_box, 0, [], OriginAnswer(pieces * PIECE, PIECE))
    offers = [PieceReport(n, "", True, digest=f"blake3:{n:064x}") for n in range(pieces)]
    swarm.stream_update(reader.peer_id, reader_box, 0, offers)
    boxes = {}
    for n in range(1, peers + 1):
        _, peer = await swarm.register_task(register(n), request)
        boxes[peer.peer_id] = swarm.open_stream(peer.peer_id, window, [])
    outstanding = {peer_id: drain(box) for peer_id, box in boxes.items()}
    reports = 0
    cpu, wall = time.process_time(), time.monotonic()
    while any(outstanding.values()):
        for peer_id, box in boxes.items():
            done = outstanding[peer_id]
            if not done:
                continue
            swarm.stream_update(peer_id, box, 0, [PieceReport(number, parent, True) for number, parent in done])
            reports += len(done)
            outstanding[peer_id] = drain(box)
        for peer_id, box in boxes.items():  # assignments that others' reports woke
            outstanding[peer_id] += drain(box)
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    held = sum(1 for peer in task.peers.values() if task.is_complete(peer))
    if held < peers:
        raise RuntimeError(f"{peers - held} peers incomplete")
    return reports, cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=int, default=2000)
    parser.add_argument("--pieces", type=int, default=32)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    per_report = []
    for n in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            reports, cpu, wall = asyncio.run(run(args.peers, args.pieces, args.window, Path(tmp)))
        per_report.append(cpu / reports * 1e6)
        print(f"run {n + 1}: {reports:,} reports, {cpu:.2f} CPU-s in {wall:.2f} s: {per_report[-1]:.1f} µs per report")
    print(
        f"median: {statistics.median(per_report):.1f} µs of CPU per report ({args.peers:,} peers, {args.pieces} pieces)"
    )


if __name__ == "__main__":
    main()
