"""Which supernodes make up the cluster: the `--supernode` entries, each `HOST:PORT` (one supernode) or
`dns:///NAME:PORT` (every address NAME resolves to is one supernode: a Kubernetes headless Service).

A DNS entry is resolved at start, every REFRESH_S, and soon after a supernode stops answering (at most once per
MIN_REFRESH_GAP_S). An answer that fails or is empty keeps the addresses of the last good one: a resolver that is
briefly away does not empty the ring. Members are named by what is dialled ("HOST:PORT", "IP:PORT" for a DNS entry),
the names the ring hashes: every host given the same entries computes the same owners.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Sequence

from dfcommon.errors import InvalidArgument
from dfcommon.sizes import hostport, parse_hostport

log = logging.getLogger(__name__)

DNS_SCHEME = "dns:///"
REFRESH_S = 30.0  # a headless Service's addresses change when pods come and go: seconds between two looks
MIN_REFRESH_GAP_S = 2.0  # a refresh asked for because a supernode stopped answering waits at least this long

Resolver = Callable[[str, int], Awaitable[list[str]]]


def parse_entry(text: str) -> str:
    """One `--supernode` entry, validated: "HOST:PORT" or "dns:///NAME:PORT" (InvalidArgument, one line)."""
    value = text.strip()
    if value.lower().startswith("dns:"):
        if not value.lower().startswith(DNS_SCHEME):
            raise InvalidArgument(f"invalid supernode {value[:80]!r}: want dns:///NAME:PORT (no DNS server part)")
        host, port = parse_hostport(value[len(DNS_SCHEME) :])
        return f"{DNS_SCHEME}{hostport(host, port)}"
    if "://" in value:
        raise InvalidArgument(f"invalid supernode {value[:80]!r}: want HOST:PORT or dns:///NAME:PORT")
    host, port = parse_hostport(value)
    return hostport(host, port)


def parse_supernodes(text: str) -> list[str]:
    """ "ENTRY[,ENTRY...]" -> validated entries, each "HOST:PORT" (one supernode) or "dns:///NAME:PORT" (every
    address NAME resolves to)."""
    return [parse_entry(item) for item in text.split(",") if item.strip()]


def is_dns(entry: str) -> bool:
    """True for a dns:///NAME:PORT entry."""
    return entry.startswith(DNS_SCHEME)


def dial_target(entry: str) -> str:
    """What to dial, or to look up a route towards, for an entry: "NAME:PORT" for a DNS entry."""
    return entry[len(DNS_SCHEME) :] if is_dns(entry) else entry


async def resolve(name: str, port: int) -> list[str]:
    """Every address name resolves to (the system resolver), as "IP:PORT", in the resolver's order."""
    infos = await asyncio.get_running_loop().getaddrinfo(name, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(hostport(str(info[4][0]), port) for info in infos))


class Membership:
    """The supernodes now: the fixed entries, and what each DNS entry resolved to last."""

    def __init__(
        self, entries: Sequence[str], resolver: Resolver = resolve, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.entries = list(entries)
        self._resolver = resolver
        self._clock = clock
        self._resolved: dict[str, list[str]] = {entry: [] for entry in self.entries if is_dns(entry)}
        self._last_refresh = float("-inf")
        self._refreshing: asyncio.Task[bool] | None = None

    @property
    def dynamic(self) -> bool:
        """True when some entry is a DNS name (then refresh() may change the members)."""
        return bool(self._resolved)

    def members(self) -> list[str]:
        """The member addresses, each once, in entry order."""
        found: list[str] = []
        for entry in self.entries:
            found.extend(self._resolved[entry] if is_dns(entry) else [entry])
        return list(dict.fromkeys(found))

    async def refresh(self) -> bool:
        """Resolve every DNS entry again (one refresh at a time); True when the members changed."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._refresh())
        return await asyncio.shield(self._refreshing)

    async def refresh_soon(self) -> bool:
        """refresh() unless one ran within MIN_REFRESH_GAP_S (a supernode stopped answering: did the name change?)."""
        if not self.dynamic or self._clock() - self._last_refresh < MIN_REFRESH_GAP_S:
            return False
        return await self.refresh()

    async def _refresh(self) -> bool:
        self._last_refresh = self._clock()
        before = self.members()
        for entry in self._resolved:
            host, port = parse_hostport(dial_target(entry))
            try:
                addresses = await self._resolver(host, port)
            except OSError as exc:
                log.warning("supernodes: %s does not resolve (%s); keeping %s", entry, exc, self._resolved[entry])
                continue
            if not addresses:
                log.warning("supernodes: %s resolved to no address; keeping %s", entry, self._resolved[entry])
                continue
            if addresses != self._resolved[entry]:
                log.info("supernodes: %s resolves to %s", entry, ", ".join(addresses))
            self._resolved[entry] = addresses
        return set(self.members()) != set(before)


__all__ = ["DNS_SCHEME", "Membership", "dial_target", "is_dns", "parse_entry", "resolve"]
