"""The error tree: every error carries the gRPC status code programs receive."""

from __future__ import annotations

import grpc


class DandelionError(Exception):
    """Base of all expected errors; str() is the one line a person reads."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class InvalidArgument(DandelionError):
    """A request, flag or config value is malformed."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(DandelionError):
    """An unknown task, peer, host or piece."""

    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(DandelionError):
    """A call that does not fit the caller's state (an order stream for a host that is no seed peer)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class PermissionDenied(DandelionError):
    """The caller may not do this (a seed peer's registration without a seed certificate)."""

    code = grpc.StatusCode.PERMISSION_DENIED


class OriginError(DandelionError):
    """The origin refused or failed; code follows its HTTP status."""

    def __init__(self, message: str, http_status: int | None = None) -> None:
        super().__init__(message, origin_status_code(http_status))
        self.http_status = http_status


class DigestMismatch(DandelionError):
    """Content or a piece does not match its expected digest."""

    code = grpc.StatusCode.DATA_LOSS


class LocalDiskError(DandelionError):
    """This host's cache disk cannot hold the content (read-only, failing): retrying from elsewhere cannot help."""

    code = grpc.StatusCode.INTERNAL


class LocalDiskFull(LocalDiskError):
    """This host's cache disk has no room for the content (ENOSPC, quota); not a busy server: waiting is no cure."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(DandelionError):
    """A server (supernode, parent, origin) cannot be reached."""

    code = grpc.StatusCode.UNAVAILABLE


# What a stopping dfdaemon answers its running downloads (DaemonService.Download): dfget then waits for it to come
# back and goes on through it (peer.through_daemon), as for a dfdaemon that died.
DAEMON_STOPPING = "the dfdaemon is stopping"
# The trailing metadata key of every error status the dfdaemon's DaemonService answers itself: an UNAVAILABLE
# without it is the transport's (the dfdaemon died, or its connection did), one with it is the dfdaemon's word.
DAEMON_ANSWERED = "dandelion-answered"


class DaemonStopping(Unavailable):
    """The dfdaemon stops (SIGTERM): its running downloads end with this."""

    def __init__(self) -> None:
        super().__init__(DAEMON_STOPPING)


def origin_status_code(http_status: int | None) -> grpc.StatusCode:
    """The gRPC code that stands for an origin's HTTP status (None: unreachable)."""
    if http_status is None:
        return grpc.StatusCode.UNAVAILABLE
    return {
        400: grpc.StatusCode.INVALID_ARGUMENT,
        401: grpc.StatusCode.UNAUTHENTICATED,
        403: grpc.StatusCode.PERMISSION_DENIED,
        404: grpc.StatusCode.NOT_FOUND,
        410: grpc.StatusCode.NOT_FOUND,
        416: grpc.StatusCode.OUT_OF_RANGE,
        429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    }.get(http_status, grpc.StatusCode.UNAVAILABLE)
