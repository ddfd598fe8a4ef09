"""One page of a listing ordered by id: at most MAX_PAGE items after the previous page's last id."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from typing import TypeVar

from dfcommon.errors import InvalidArgument

MAX_PAGE = 1000  # items per answer: 1000 TaskInfos are ~300 KB, far below the 1 MiB message limit
MAX_TOKEN = 128

T = TypeVar("T")


def page(items: Iterable[T], key: Callable[[T], str], size: int, token: str) -> tuple[list[T], str]:
    """The items after token (the last key of the previous page), ordered by key, at most size (0: MAX_PAGE) of
    them, and the token of the next page ("" when this is the last)."""
    if len(token) > MAX_TOKEN:
        raise InvalidArgument(f"page_token is longer than {MAX_TOKEN} characters")
    limit = MAX_PAGE if size == 0 or size > MAX_PAGE else size
    after = [item for item in items if key(item) > token]
    chosen = heapq.nsmallest(limit + 1, after, key=key)
    if len(chosen) > limit:
        chosen = chosen[:limit]
        return chosen, key(chosen[-1])
    return chosen, ""
