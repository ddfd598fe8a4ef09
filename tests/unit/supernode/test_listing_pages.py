"""Listings come a page at a time, in id order, and every item exactly once over the pages."""

from __future__ import annotations

import pytest

from dfcommon.errors import InvalidArgument
from supernode.rpc.pages import MAX_PAGE, page


def walk(ids: list[str], size: int) -> list[list[str]]:
    pages, token = [], ""
    while True:
        chosen, token = page(ids, lambda i: i, size, token)
        pages.append(chosen)
        if not token:
            return pages


@pytest.mark.parametrize(("count", "size", "pages"), [(0, 0, 1), (5, 2, 3), (6, 2, 3), (2500, 0, 3), (7, 7, 1)])
def test_every_item_once_in_order(count: int, size: int, pages: int) -> None:
    ids = [f"{n:064x}" for n in range(count)][::-1]
    got = walk(ids, size)
    assert len(got) == pages
    assert [i for p in got for i in p] == sorted(ids)
    assert all(len(p) <= (size or MAX_PAGE) for p in got)


def test_a_page_size_beyond_the_maximum_is_capped() -> None:
    chosen, token = page([f"{n:04d}" for n in range(MAX_PAGE + 10)], lambda i: i, 10**6, "")
    assert len(chosen) == MAX_PAGE and token == chosen[-1]


def test_an_item_that_arrives_between_pages_after_the_token_is_listed() -> None:
    first, token = page(["a", "c"], lambda i: i, 1, "")
    rest, _ = page(["a", "b", "c"], lambda i: i, 1, token)
    assert first == ["a"] and rest == ["b"]


def test_an_oversized_token_is_refused() -> None:
    with pytest.raises(InvalidArgument):
        page(["a"], lambda i: i, 1, "x" * 500)
