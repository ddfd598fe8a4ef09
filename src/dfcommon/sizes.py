"""Human sizes, rates ("4MiB", "100M") and durations ("10m"), and HOST:PORT parsing for flags and config."""

from __future__ import annotations

import ipaddress
import re

from dfcommon.errors import InvalidArgument

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1000**4,
    "tb": 1000**4,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_size(text: str) -> int:
    """Bytes in "4MiB", "100M", "1.5G" or "4096" (K/M/G are powers of 1000, KiB/MiB/GiB of 1024)."""
    match = _SIZE.match(text.lower())
    if not match or match.group(2) not in _UNITS:
        raise InvalidArgument(f"invalid size {text!r}: want a number with an optional unit like 4MiB or 100M")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def parse_duration(text: str) -> float:
    """Seconds in "90s", "15m", "6h", "2d" or a bare number of seconds."""
    value = text.strip().lower()
    unit = value[-1:] if value[-1:] in _DURATION_UNITS else "s"
    number = value[:-1] if value[-1:] in _DURATION_UNITS else value
    try:
        seconds = float(number) * _DURATION_UNITS[unit]
    except ValueError:
        raise InvalidArgument(f"invalid duration {text!r}: want a number with s, m, h or d") from None
    if not seconds >= 0:
        raise InvalidArgument(f"invalid duration {text!r}: want a number of seconds, not negative")
    return seconds


def parse_hostport(text: str, default_port: int | None = None) -> tuple[str, int]:
    """Split "HOST:PORT" or "[v6]:PORT"; the port may be omitted when default_port is given."""
    value = text.strip()
    host, port_text = value, ""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else rest
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    if not port_text:
        if default_port is None:
            raise InvalidArgument(f"invalid address {text!r}: want HOST:PORT")
        port_text = str(default_port)
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InvalidArgument(f"invalid address {text!r}: want HOST:PORT with a port from 1 to 65535")
    return host, int(port_text)


def hostport(host: str, port: int) -> str:
    """ "HOST:PORT", "[v6]:PORT" for an IPv6 address (what parse_hostport reads back)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_ip(text: str) -> str:
    """Validate an IPv4 or IPv6 address."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise InvalidArgument(f"invalid IP address {text!r}") from None
