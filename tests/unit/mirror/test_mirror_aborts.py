"""uvicorn's traceback of a response cut for an expected cause is dropped; a bug keeps it."""

from __future__ import annotations

import logging
import sys

from dfcommon.errors import OriginError
from mirror import aborts


def record(exc: BaseException, msg: str = "Exception in ASGI application\n") -> logging.LogRecord:
    try:
        raise exc
    except BaseException:
        info = sys.exc_info()
    return logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, msg, None, info)


def test_expected_aborts_lose_their_traceback_and_bugs_keep_it() -> None:
    dropped = aborts.ExpectedAbortFilter()
    assert not dropped.filter(record(OriginError("origin ended early for http://h/x")))
    assert not dropped.filter(record(ConnectionResetError(104, "reset")))
    assert dropped.filter(record(KeyError("bug")))
    assert dropped.filter(record(OriginError("x"), msg="something else"))


def test_the_access_line_names_the_cause_in_one_line() -> None:
    assert aborts.describe(OriginError("origin ended early\nfor x")) == "OriginError: origin ended early for x"
    assert aborts.describe(KeyError("secret-ish detail")) == "KeyError"


def test_install_is_idempotent() -> None:
    aborts.install()
    aborts.install()
    logger = logging.getLogger(aborts.UVICORN_LOGGER)
    assert sum(isinstance(f, aborts.ExpectedAbortFilter) for f in logger.filters) == 1
