"""Log lines that hostile traffic can trigger: at most one line per kind per interval, with a count of the rest."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

DEFAULT_INTERVAL = 10.0
MAX_KINDS = 256  # kinds remembered; the oldest is forgotten first (kinds come from method names and error types)


class RateLimitedLog:
    """One line per kind per interval; the next line of a kind says how many of it were suppressed."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._kinds: OrderedDict[str, tuple[float, int]] = OrderedDict()  # kind -> (last logged, suppressed since)

    def log(self, level: int, kind: str, message: str, exc_info: BaseException | None = None) -> bool:
        """Log message (and exc_info's traceback) unless kind was logged within the interval; True if logged."""
        now = self.clock()
        last, suppressed = self._kinds.get(kind, (float("-inf"), 0))
        if now - last < self.interval:
            self._kinds[kind] = (last, suppressed + 1)
            return False
        self._kinds[kind] = (now, 0)
        self._kinds.move_to_end(kind)
        while len(self._kinds) > MAX_KINDS:
            self._kinds.popitem(last=False)
        if suppressed:
            message = f"{message} ({suppressed} more like it in the last {now - last:.0f}s not logged)"
        self.logger.log(level, "%s", message, exc_info=exc_info)
        return True

    def warning(self, kind: str, message: str) -> bool:
        """log() at WARNING, one line."""
        return self.log(logging.WARNING, kind, message)
