"""dandelion.peer.v1.PeerService for the seed's pieces."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import grpc
from dandelion.peer.v1 import peer_pb2

from dfcommon.errors import InvalidArgument
from dfcommon.grpcserver import add_download_pieces
from supernode.rpc import validate
from supernode.rpc.errors import abort
from supernode.seed.uploads import SeedUploads

MAX_PIECES_PER_CALL = 4096


class SeedPeerService:
    """Streams the seed's verified pieces; its messages leave already serialized (see dfcommon.wire): register
    with add_seed_peer_service."""

    def __init__(self, uploads: SeedUploads) -> None:
        self.uploads = uploads

    async def DownloadPieces(
        self, request: peer_pb2.DownloadPiecesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        """The requested pieces, each as consecutive chunks of at most 1 MiB."""
        try:
            task_id = validate.ident(request.task_id, "task_id")
            if not request.piece_numbers:
                raise InvalidArgument("piece_numbers is empty")
            if len(request.piece_numbers) > MAX_PIECES_PER_CALL:
                raise InvalidArgument(f"too many pieces in one call: > {MAX_PIECES_PER_CALL}")
            async with aclosing(self.uploads.messages(task_id, list(request.piece_numbers))) as messages:
                async for message in messages:
                    yield message
        except grpc.aio.AbortError:
            raise
        except Exception as err:
            await abort(context, err)


def add_seed_peer_service(servicer: SeedPeerService, server: grpc.aio.Server) -> None:
    """Serve PeerService.DownloadPieces from servicer; its messages go out as the bytes it yields."""
    add_download_pieces(servicer.DownloadPieces, server)
