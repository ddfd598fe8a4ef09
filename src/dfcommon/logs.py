"""One line per event: time, level, component, message with key=value fields."""

from __future__ import annotations

import logging
import sys


def setup_logging(component: str, level: str = "info") -> None:
    """Log to stderr as 'TIME LEVEL component: message'."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s {component}: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
