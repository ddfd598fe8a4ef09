"""The --range / UrlMeta.range syntax: "START-END", inclusive, END optional."""

from __future__ import annotations

import re

from dfcommon.errors import InvalidArgument

_RANGE = re.compile(r"^(\d+)-(\d*)$")


def parse_byte_range(text: str) -> tuple[int, int | None]:
    """("START-END" inclusive, END optional) -> (start, end or None)."""
    match = _RANGE.match(text.strip())
    if not match or (match.group(2) and int(match.group(2)) < int(match.group(1))):
        raise InvalidArgument(f"invalid byte range {text!r}: want START-END")
    return int(match.group(1)), int(match.group(2)) if match.group(2) else None
