"""WWW-Authenticate parsing (RFC 7235): which auth scheme an upstream asks for, and its parameters."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
# One item of a challenge list: "scheme" or "key=value" (value a token, a quoted string or token68), or a comma.
_ITEM = re.compile(rf"\s*(?:({_TOKEN})\s*=\s*({_QUOTED}|{_TOKEN}=*)|({_TOKEN}=*)|(,))\s*")


@dataclass(frozen=True)
class Challenge:
    """One challenge: a lower-cased scheme ("basic", "bearer") and its parameters (keys lower-cased)."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)


def _unquote(value: str) -> str:
    if value.startswith('"'):
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_challenges(headers: Iterable[str]) -> list[Challenge]:
    """Every challenge in the given WWW-Authenticate header values; unparseable rest is ignored."""
    challenges: list[Challenge] = []
    for header in headers:
        position = 0
        current: Challenge | None = None
        while position < len(header):
            match = _ITEM.match(header, position)
            if not match or match.end() == position:
                break
            position = match.end()
            key, value, bare, _comma = match.groups()
            if key is not None and current is not None:
                current.params[key.lower()] = _unquote(value)
            elif bare is not None:
                # A bare token after a scheme with no params yet is token68 (e.g. Basic's); else a new scheme.
                if current is not None and not current.params and "=" in bare:
                    continue
                current = Challenge(bare.lower())
                challenges.append(current)
    return challenges


def find_challenge(challenges: Iterable[Challenge], scheme: str) -> Challenge | None:
    """The first challenge of scheme (case-insensitive), if any."""
    return next((c for c in challenges if c.scheme == scheme.lower()), None)
