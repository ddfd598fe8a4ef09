"""Mapping of errors to gRPC status at the servicer boundary."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from dfcommon.errors import DandelionError

log = logging.getLogger(__name__)

S = TypeVar("S")
Q = TypeVar("Q")
R = TypeVar("R")


async def abort(context: grpc.aio.ServicerContext[Any, Any], err: BaseException) -> None:
    """End the call with err's status: its code for a DandelionError, INTERNAL (logged) otherwise."""
    if isinstance(err, DandelionError):
        await context.abort(err.code, str(err)[:1000])
    log.error("internal error: %s: %s", type(err).__name__, err, exc_info=err)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(err).__name__}")


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
