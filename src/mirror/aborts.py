"""Responses cut mid-body (the upstream or the swarm failed, the client went away): one log line, no traceback.

Once a blob's status and headers are sent, the only way to tell the client the body is bad is to cut the
connection, which uvicorn does when the application raises; it also logs "Exception in ASGI application" with a
traceback. For an expected cause (a DandelionError from the swarm, the client's connection gone) the mirror's
access log line already says what happened: uvicorn's record is dropped. Anything else keeps its traceback (a bug).
"""

from __future__ import annotations

import logging

from dfcommon.errors import DandelionError

UVICORN_LOGGER = "uvicorn.error"
_ASGI_EXCEPTION = "Exception in ASGI application"
EXPECTED = (DandelionError, ConnectionError, TimeoutError)
MAX_REASON = 200


def expected(exc: BaseException) -> bool:
    """True for an abort with an expected cause (not a bug)."""
    return isinstance(exc, EXPECTED)


def describe(exc: BaseException) -> str:
    """The abort's cause for the access log line: the class and, for expected causes, the one-line message."""
    if not expected(exc):
        return type(exc).__name__
    text = str(exc).replace("\n", " ")
    return f"{type(exc).__name__}: {text[:MAX_REASON]}" if text else type(exc).__name__


class ExpectedAbortFilter(logging.Filter):
    """Drops uvicorn's traceback record of an application that raised an expected abort."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for the record of an expected abort."""
        exc = record.exc_info[1] if record.exc_info else None
        return not (exc is not None and str(record.msg).startswith(_ASGI_EXCEPTION) and expected(exc))


def install() -> None:
    """Put the filter on uvicorn's error logger (once)."""
    logger = logging.getLogger(UVICORN_LOGGER)
    if not any(isinstance(f, ExpectedAbortFilter) for f in logger.filters):
        logger.addFilter(ExpectedAbortFilter())
