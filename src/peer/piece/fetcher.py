"""Downloads a group of pieces from one parent over one DownloadPieces stream."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import grpc
from dandelion.common.v1 import common_pb2
from dandelion.peer.v1 import peer_pb2

from dfcommon.errors import DigestMismatch
from peer.grpcutil import EOF, piece_chunks
from peer.piece import failures
from peer.piece.assembler import PieceAssembler
from peer.piece.model import Parent, PieceOutcome, PieceSpec
from peer.storage.task_store import TaskStore
from peer.tokenbucket import TokenBucket, acquire_all

log = logging.getLogger(__name__)
# Who asks: (peer id, host id, the supernode's access grant for that host and task, or None without one).
Requester = tuple[str, str, common_pb2.AccessGrant | None]


async def _store_piece(assembler: PieceAssembler, store: TaskStore, parent: Parent, started: float) -> PieceOutcome:
    piece = assembler.piece
    try:
        await assembler.store(store)
    except DigestMismatch as exc:
        log.warning("bad piece from parent=%s at %s: %s", parent.peer_id, parent.target, exc)
        return PieceOutcome(piece.number, parent.peer_id, False, failures.BAD_DIGEST)
    except (OSError, ValueError) as exc:
        log.error("cannot store piece %d of task=%s: %s", piece.number, store.task_id, exc)
        code = (exc.errno or 0) if isinstance(exc, OSError) else 0
        return PieceOutcome(piece.number, parent.peer_id, False, failures.LOCAL, local_errno=code)
    elapsed = int((time.monotonic() - started) * 1000)
    return PieceOutcome(piece.number, parent.peer_id, True, 0, elapsed, piece.size)


async def fetch_group(
    channel: grpc.aio.Channel,
    task_id: str,
    requester: Requester,
    parent: Parent,
    pieces: list[PieceSpec],
    store: TaskStore,
    on_outcome: Callable[[PieceOutcome], None],
    buckets: list[TokenBucket],
    message_timeout: float = 15.0,
) -> int:
    """Fetch pieces in order, verify and store each; report every piece exactly once. Returns bytes stored.

    A received piece is verified and written in a worker thread while the next one arrives; at most one
    piece per stream waits for that, so memory stays at about two pieces per stream.
    """
    peer_id, host_id, grant = requester
    request = peer_pb2.DownloadPiecesRequest(
        task_id=task_id,
        piece_numbers=[p.number for p in pieces],
        requester_peer_id=peer_id,
        requester_host_id=host_id,
        grant=grant,
    )
    pending = list(reversed(pieces))
    stored = 0
    storing: asyncio.Task[PieceOutcome] | None = None

    def fail_rest(failure: int) -> None:
        while pending:
            piece = pending.pop()
            on_outcome(PieceOutcome(piece.number, parent.peer_id, False, failure))

    async def store_and_report(assembler: PieceAssembler, started: float) -> PieceOutcome:
        # Reported as soon as it is stored, not when the next piece has arrived: readers of the content
        # (dfget, the mirror) and the scheduler learn of it one piece earlier.
        outcome = await _store_piece(assembler, store, parent, started)
        on_outcome(outcome)
        return outcome

    async def settle() -> None:
        nonlocal storing, stored
        if storing is not None:
            outcome = await storing
            storing = None
            stored += outcome.size
            if outcome.failure == failures.LOCAL:
                fail_rest(failures.LOCAL)

    call = piece_chunks(channel)(request)
    try:
        while pending:
            piece = pending[-1]
            assembler = PieceAssembler(piece)
            started = time.monotonic()
            while not assembler.full:
                async with asyncio.timeout(message_timeout):
                    item = await call.read()
                if item is EOF or not isinstance(item, tuple):  # None: a message that does not parse
                    raise EOFError
                message, data = item
                if message.piece_number != piece.number:
                    raise ValueError(f"parent sent piece {message.piece_number}, want {piece.number}")
                await acquire_all(buckets, len(data))
                assembler.add(message.offset, data)
            await settle()  # the previous piece, stored while this one arrived
            if not pending:
                break
            pending.pop()
            storing = asyncio.create_task(store_and_report(assembler, started))
        await settle()
    except TimeoutError:
        fail_rest(failures.TIMEOUT)
    except grpc.aio.AioRpcError as exc:
        log.info("parent=%s at %s failed: %s", parent.peer_id, parent.target, exc.code())
        fail_rest(failures.classify_status(exc.code()))
    except (EOFError, ValueError) as exc:
        log.info("parent=%s at %s broke the piece stream: %s", parent.peer_id, parent.target, exc or "early end")
        fail_rest(failures.PARENT_UNAVAILABLE)
    finally:
        call.cancel()
        if storing is not None:
            if asyncio.current_task() is not None and not asyncio.current_task().cancelling():  # type: ignore[union-attr]
                await settle()
            else:
                storing.cancel()
        if pending:
            fail_rest(failures.PARENT_UNAVAILABLE)
    return stored
