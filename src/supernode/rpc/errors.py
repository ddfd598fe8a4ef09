"""Mapping of errors to gRPC status at the servicer boundary."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from dfcommon.errors import DandelionError
from dfcommon.grpcguard import INTERNAL_MESSAGE
from dfcommon.ratelog import RateLimitedLog

log = logging.getLogger(__name__)
quiet = RateLimitedLog(log)

S = TypeVar("S")
Q = TypeVar("Q")
R = TypeVar("R")


async def abort(context: grpc.aio.ServicerContext[Any, Any], err: BaseException) -> None:
    """End the call with err's status: its code for a DandelionError, INTERNAL otherwise (its traceback logged at
    most once per kind and interval; the caller's message names no Python class)."""
    if isinstance(err, DandelionError):
        await context.abort(err.code, str(err)[:1000])
    quiet.log(logging.ERROR, f"internal:{type(err).__name__}", f"internal error: {err!r}"[:1000], err)
    await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)


def mapped(
    method: Callable[[S, Q, grpc.aio.ServicerContext[Any, Any]], Awaitable[R]],
) -> Callable[[S, Q, grpc.aio.ServicerContext[Any, Any]], Awaitable[R]]:
    """Wrap a unary servicer method so expected errors become their status codes."""

    @functools.wraps(method)
    async def wrapper(self: S, request: Q, context: grpc.aio.ServicerContext[Any, Any]) -> R:
        try:
            return await method(self, request, context)
        except DandelionError as err:
            await abort(context, err)
        except grpc.aio.AbortError:
            raise
        except Exception as err:
            await abort(context, err)
        raise AssertionError("unreachable")

    return wrapper


__all__ = ["abort", "mapped"]
