"""One line per event on stderr: text ('TIME LEVEL component: message') or JSON, times in ISO 8601 with offset.

Every command takes --log-level and --log-format; their defaults come from DANDELION_LOG_LEVEL and
DANDELION_LOG_FORMAT (the environment of compose.yaml), below the command's own flags, environment and file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import datetime

from dfcommon.errors import InvalidArgument

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
LEVEL_ENV = "DANDELION_LOG_LEVEL"
FORMAT_ENV = "DANDELION_LOG_FORMAT"
# Library loggers quieter than ours: request lines, and grpc's "Loaded running loop" on every call at debug.
_QUIET = {
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "uvicorn.access": logging.WARNING,
    "grpc._cython.cygrpc": logging.INFO,
}
# Messages that are routine, not warnings: docker's TLS probe of a plain-HTTP mirror.
_DEMOTED = {"uvicorn.error": ("Invalid HTTP request received.",)}


def iso_time(created: float) -> str:
    """A record's time as ISO 8601 in local time with its UTC offset, to the millisecond."""
    return datetime.fromtimestamp(created).astimezone().isoformat(timespec="milliseconds")


class TextFormatter(logging.Formatter):
    """TIME LEVEL component: message (exceptions on the following lines)."""

    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        """One line of text."""
        line = f"{iso_time(record.created)} {record.levelname} {self.component}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, component, logger, message (and exception)."""

    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        """One line of JSON."""
        entry = {
            "time": iso_time(record.created),
            "level": record.levelname.lower(),
            "component": self.component,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class _Demote(logging.Filter):
    """Re-level known routine messages to DEBUG (dropped unless the root logs debug)."""

    def __init__(self, messages: tuple[str, ...]) -> None:
        super().__init__()
        self.messages = messages

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep other records; demote ours."""
        if record.levelno <= logging.DEBUG or record.getMessage() not in self.messages:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


def add_logging_flags(parser: argparse.ArgumentParser, default_level: str = "info") -> None:
    """--log-level and --log-format, defaulting to DANDELION_LOG_LEVEL / DANDELION_LOG_FORMAT."""
    level = os.environ.get(LEVEL_ENV, "").strip().lower() or default_level
    fmt = os.environ.get(FORMAT_ENV, "").strip().lower() or "text"
    parser.add_argument("--log-level", default=level, choices=LOG_LEVELS, help=f"default %(default)s (or ${LEVEL_ENV})")
    parser.add_argument(
        "--log-format", default=fmt, choices=LOG_FORMATS, help=f"text or json (default %(default)s, ${FORMAT_ENV})"
    )


def setup_logging(component: str, level: str = "info", fmt: str = "text") -> None:
    """Log to stderr in fmt at level; InvalidArgument for an unknown level or format (e.g. from the env)."""
    if level not in LOG_LEVELS:
        raise InvalidArgument(f"invalid log level {level!r} (--log-level, ${LEVEL_ENV}): want {', '.join(LOG_LEVELS)}")
    if fmt not in LOG_FORMATS:
        raise InvalidArgument(f"invalid log format {fmt!r} (--log-format, ${FORMAT_ENV}): want text or json")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(component) if fmt == "json" else TextFormatter(component))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name, quiet in _QUIET.items():
        logging.getLogger(name).setLevel(quiet)
    for name, messages in _DEMOTED.items():
        target = logging.getLogger(name)
        target.filters = [f for f in target.filters if not isinstance(f, _Demote)]
        target.addFilter(_Demote(messages))
