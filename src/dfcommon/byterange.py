"""The --range / UrlMeta.range syntax: "START-END", inclusive, END optional."""

from __future__ import annotations

import re

from dfcommon.errors import InvalidArgument

MAX_TEXT = 100
_RANGE = re.compile(r"^(\d{1,19})-(\d{0,19})$")  # 19 digits hold any file position; int() of 5,000 fails


def parse_byte_range(text: str) -> tuple[int, int | None]:
    """("START-END" inclusive, END optional) -> (start, end or None)."""
    match = _RANGE.match(text.strip()) if len(text) <= MAX_TEXT else None
    if not match or (match.group(2) and int(match.group(2)) < int(match.group(1))):
        raise InvalidArgument(f"invalid byte range {text[:80]!r}: want START-END")
    return int(match.group(1)), int(match.group(2)) if match.group(2) else None
