"""What a supernode's answer means to the host: which failures move a task to the next supernode, which say the
supernode forgot this host or that the origin failed, and the errors a SupernodeLink raises for them."""

from __future__ import annotations

import grpc

from dfcommon.errors import DandelionError, Unavailable

FAILOVER_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def status_error(exc: grpc.aio.AioRpcError) -> DandelionError:
    """A supernode's status as a DandelionError carrying the same code and its one-line message."""
    return DandelionError(exc.details() or str(exc.code()), exc.code())


def is_host_not_found(exc: grpc.aio.AioRpcError) -> bool:
    """True when the supernode does not know our host (it restarted or dropped us)."""
    details = (exc.details() or "").lower()
    return exc.code() == grpc.StatusCode.NOT_FOUND and "host" in details and not details.startswith("origin")


def is_origin_failure(exc: grpc.aio.AioRpcError) -> bool:
    """True when the supernode answered that the origin (or its seed's fetch) failed: it is reachable, and moving
    to another supernode or registering again would only drop this host's running downloads from the swarm."""
    details = (exc.details() or "").lower()
    return details.startswith(("origin ", "seed fetch "))


class SupernodeDown(Unavailable):
    """This supernode does not answer (UNAVAILABLE, or a call that timed out): the task goes to the next owner."""


class SupernodeBehind(DandelionError):
    """A call timed out at a supernode that is behind (is_behind): it stays up."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED
