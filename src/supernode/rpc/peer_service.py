"""dandelion.peer.v1.PeerService for the seed's pieces."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from dandelion.peer.v1 import peer_pb2, peer_pb2_grpc

from dfcommon.errors import InvalidArgument
from supernode.rpc import validate
from supernode.rpc.errors import abort
from supernode.seed.uploads import SeedUploads

MAX_PIECES_PER_CALL = 4096


class SeedPeerService(peer_pb2_grpc.PeerServiceServicer):
    """Streams the seed's verified pieces."""

    def __init__(self, uploads: SeedUploads) -> None:
        self.uploads = uploads

    async def DownloadPieces(  # type: ignore[override]
        self, request: peer_pb2.DownloadPiecesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[peer_pb2.DownloadPiecesResponse]:
        """The requested pieces, each as consecutive chunks of at most 1 MiB."""
        try:
            task_id = validate.ident(request.task_id, "task_id")
            if not request.piece_numbers:
                raise InvalidArgument("piece_numbers is empty")
            if len(request.piece_numbers) > MAX_PIECES_PER_CALL:
                raise InvalidArgument(f"too many pieces in one call: > {MAX_PIECES_PER_CALL}")
            async for number, offset, data in self.uploads.chunks(task_id, list(request.piece_numbers)):
                yield peer_pb2.DownloadPiecesResponse(piece_number=number, offset=offset, data=data)
        except grpc.aio.AbortError:
            raise
        except Exception as err:
            await abort(context, err)
