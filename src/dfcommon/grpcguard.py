"""The guard every gRPC server runs its handlers behind: bad input gets a status, not a traceback; streams close.

grpc.aio answers a request that fails to deserialize, or a handler's unexpected exception, with UNKNOWN
"Unexpected <class '...'>" and logs a traceback per call. Behind this guard instead:
- a request message that does not parse gets INVALID_ARGUMENT with a plain line, logged once per method and
  interval (dfcommon.ratelog);
- a DandelionError escaping a handler gets its own code; any other exception INTERNAL with a plain line, its
  traceback logged at most once per kind and interval;
- a handler written as an async generator runs as a coroutine that writes each message and closes the generator
  on every way out (finished, failed, aborted, cancelled by the client or its deadline, peer gone), so the
  generator's `finally` and `with` blocks run at once instead of whenever the garbage collector finds it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, TypeAlias

import grpc

from dfcommon.errors import DandelionError, InvalidArgument
from dfcommon.metrics import MALFORMED_REQUESTS
from dfcommon.ratelog import RateLimitedLog

log = logging.getLogger(__name__)
quiet = RateLimitedLog(log)

Context = grpc.aio.ServicerContext[Any, Any]
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
INTERNAL_MESSAGE = "internal error (the server logged it)"
# A client that stops reading (alive, so keepalive does not end the call) would hold its call and its upload slot
# for good; one write blocked this long ends the call. Long enough for a client reading 1 MiB messages at 4 KB/s.
WRITE_STALL_SECONDS = 300.0


class WriteStalled(DandelionError):
    """The client read nothing for WRITE_STALL_SECONDS."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class StallWatch:
    """Ends the current call when one of its writes stays blocked for WRITE_STALL_SECONDS (the client reads
    nothing). One timer per call that looks every quarter of that, rather than a timer per message: a supernode
    writes thousands of small messages a second."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None, "a StallWatch belongs to a call's task"
        self._task = task
        self._since: float | None = None  # when the write in progress began
        self._fired = False
        self._period = WRITE_STALL_SECONDS / 4
        self._timer = self._loop.call_later(self._period, self._look)

    def _look(self) -> None:
        if self._since is not None and self._loop.time() - self._since >= WRITE_STALL_SECONDS:
            self._fired = True
            self._task.cancel()
            return
        self._timer = self._loop.call_later(self._period, self._look)

    async def write(self, context: Context, message: Any) -> None:
        """context.write, or WriteStalled when the client leaves it blocked for WRITE_STALL_SECONDS."""
        self._since = self._loop.time()
        try:
            await context.write(message)
        except asyncio.CancelledError:
            if self._fired and self._task.uncancel() == 0:
                raise WriteStalled(f"the client read nothing for {WRITE_STALL_SECONDS:g}s") from None
            raise
        finally:
            self._since = None

    def close(self) -> None:
        self._timer.cancel()


class MalformedRequest(InvalidArgument):
    """A request message that does not parse (logged where it is found)."""


class Malformed:
    """Stands for a request message that failed to deserialize (what the guarded deserializer returns)."""

    def __init__(self, expected: str) -> None:
        self.expected = expected


def _message_name(deserializer: Callable[[bytes], Any]) -> str:
    owner = getattr(deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "request message"))


def _safe(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None
    name = _message_name(deserializer)

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:
            return Malformed(name)

    return deserialize


class _Guard:
    """Wraps one method's behavior (see the module docstring)."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.short = method.rsplit("/", 1)[-1]

    def malformed(self, request: Malformed) -> MalformedRequest:
        """Count and log (rate-limited) a malformed request; the error its caller gets."""
        MALFORMED_REQUESTS.labels("protobuf").inc()
        quiet.warning(f"malformed:{self.method}", f"malformed request to {self.method}: not a {request.expected}")
        return MalformedRequest(f"malformed request: not a valid {request.expected}")

    async def fail(self, context: Context, err: Exception) -> None:
        """End the call for err escaping the handler (re-raises grpc's own errors)."""
        if isinstance(err, grpc.aio.InternalError):
            # A write failed in core: the client is gone (cancelled, killed, deadline), and grpc may not know yet,
            # in which case it logs a traceback for it. End the call as the cancellation it is.
            log.debug("%s: the client went away mid-call", self.method)
            raise asyncio.CancelledError from None
        if isinstance(err, grpc.aio.BaseError):  # AbortError: the status is set already
            raise err
        if isinstance(err, DandelionError):
            if err.code == grpc.StatusCode.INVALID_ARGUMENT and not isinstance(err, MalformedRequest):
                MALFORMED_REQUESTS.labels("invalid").inc()
                quiet.warning(f"invalid:{self.method}", f"invalid request to {self.method}: {str(err)[:200]}")
            await context.abort(err.code, str(err)[:1000])
        if isinstance(err, NotImplementedError):  # the generated base servicer's answer for a method not served
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{self.short} is not implemented by this server")
        quiet.log(logging.ERROR, f"internal:{self.method}:{type(err).__name__}", f"{self.method} failed: {err!r}", err)
        await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)

    def requests(self, iterator: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """A request stream that raises InvalidArgument at its first malformed message."""

        async def checked() -> AsyncIterator[Any]:
            async for request in iterator:
                if isinstance(request, Malformed):
                    raise self.malformed(request)
                yield request

        return checked()


async def _serve(guard: _Guard, behavior: Callable[..., Any], writer: bool, request: Any, context: Context) -> Any:
    """Run one call's behaviour: write a streaming reply message by message (closing the generator on every exit),
    or return a unary reply; any exception becomes the guard's status and log line."""
    try:
        if writer:
            watch = StallWatch()
            try:
                async with aclosing(behavior(request, context)) as messages:
                    async for message in messages:
                        await watch.write(context, message)
            finally:
                watch.close()
            return None
        return await behavior(request, context)
    except Exception as err:
        await guard.fail(context, err)
    return None


def _unary_in(guard: _Guard, behavior: Callable[..., Any], streaming_out: bool) -> Callable[..., Any]:
    writer = streaming_out and inspect.isasyncgenfunction(behavior)

    @functools.wraps(behavior)
    async def handle(request: Any, context: Context) -> Any:
        if isinstance(request, Malformed):
            await guard.fail(context, guard.malformed(request))
            return None
        return await _serve(guard, behavior, writer, request, context)

    return handle


def _stream_in(guard: _Guard, behavior: Callable[..., Any], streaming_out: bool) -> Callable[..., Any]:
    writer = streaming_out and inspect.isasyncgenfunction(behavior)

    @functools.wraps(behavior)
    async def handle(requests: AsyncIterator[Any], context: Context) -> Any:
        return await _serve(guard, behavior, writer, guard.requests(requests), context)

    return handle


def _in_thread(behavior: Callable[..., Any]) -> Callable[..., Any]:
    """A synchronous unary behavior (a generated base servicer's stub) as a coroutine run in a worker thread."""

    @functools.wraps(behavior)
    async def run(request: Any, context: Context) -> Any:
        return await asyncio.to_thread(behavior, request, context)

    return run


def guard_handler(handler: Handler, method: str) -> Handler:
    """handler with its deserializer and behavior guarded; unchanged when its behavior is not asyncio code."""
    streaming_in, streaming_out = handler.request_streaming, handler.response_streaming
    behavior: Callable[..., Any] | None = {
        (False, False): handler.unary_unary,
        (False, True): handler.unary_stream,
        (True, False): handler.stream_unary,
        (True, True): handler.stream_stream,
    }[(streaming_in, streaming_out)]
    if behavior is None:
        return handler
    if not (inspect.iscoroutinefunction(behavior) or inspect.isasyncgenfunction(behavior)):
        if streaming_in or streaming_out:
            return handler  # none here: grpc runs such handlers as it would
        behavior = _in_thread(behavior)
    guard = _Guard(method)
    wrapped = (_stream_in if streaming_in else _unary_in)(guard, behavior, streaming_out)
    field = {
        (False, False): "unary_unary",
        (False, True): "unary_stream",
        (True, False): "stream_unary",
        (True, True): "stream_stream",
    }[(streaming_in, streaming_out)]
    replace: Callable[..., Handler] = handler._replace  # type: ignore[attr-defined]
    return replace(request_deserializer=_safe(handler.request_deserializer), **{field: wrapped})


class GuardInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Serves every method through guard_handler (each method's guarded handler is built once)."""

    def __init__(self) -> None:
        self._guarded: dict[str, tuple[Handler, Handler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        """The guarded handler of the called method (None, i.e. UNIMPLEMENTED, for an unknown method)."""
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        known = self._guarded.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        guarded = guard_handler(handler, method)
        self._guarded[method] = (handler, guarded)
        return guarded
