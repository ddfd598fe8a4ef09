"""Which addresses origin fetches may connect to: the fetch policy of the supernode's seed and the dfdaemon.

A URL that a remote caller names (PreheatTask, RegisterTask) or that an origin redirects to must not make this
process read its own metrics, the cloud metadata service or a loopback-only admin port and hand the bytes out
through the swarm. So every address a fetch is about to connect to is checked here *after* DNS resolution (a name
that resolves to 127.0.0.1 is loopback) and on every redirect hop (the HTTP client connects once per origin).

Defaults: link-local addresses (169.254.0.0/16, fe80::/10: cloud metadata) and this process's own listening
addresses are refused; loopback (and 0.0.0.0, which reaches it) is refused when the process listens beyond
loopback, so a cluster that lives on loopback (the quick start, the tests) keeps working; everything else, private
ranges included (private registries live there), is allowed. Allow and deny entries (CIDR, IP, host name or
*.domain, each with an optional :PORT, or *:PORT for any address) change that: the most specific matching entry
decides (an entry with a port beats one without, a host name beats an address range, a longer prefix beats a
shorter one, deny beats allow on a tie), and only an allow entry that names the port opens an own address.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from dfcommon.configfile import ReplacingAppend
from dfcommon.errors import InvalidArgument, OriginError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
ALLOW_FLAG = "--origin-allow"
DENY_FLAG = "--origin-deny"
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_MAX_SHOWN = 200


class OriginRefused(Exception):
    """The fetch policy refuses an address; str() is the one line a local user reads."""


def unreachable(shown_url: str) -> OriginError:
    """The error a remote caller gets for any origin that could not be reached or is not allowed: one code and one
    message shape whether the port is closed, filtered, not HTTP, or refused by the policy (no port scanner)."""
    return OriginError(f"origin unreachable or not allowed: {shown_url}", None)


def _address(text: str) -> IPAddress:
    """An IP address without IPv6 scope, IPv4-mapped IPv6 as the IPv4 address it stands for."""
    ip = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _joined(ip: IPAddress, port: int) -> str:
    """IP:PORT, an IPv6 address in brackets: how an entry names it."""
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def _host_name(host: str) -> str:
    return host.strip().lower().rstrip(".")


@dataclass(frozen=True)
class Rule:
    """One allow or deny entry: an address range, a host name (or *.suffix), or any address; maybe one port."""

    text: str
    network: IPNetwork | None = None
    host: str = ""  # an exact name, or ".suffix" for *.suffix
    port: int | None = None

    def matches(self, host: str, ip: IPAddress, port: int) -> bool:
        """True when the entry covers a connection to ip:port for the URL host host."""
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return ip.version == self.network.version and ip in self.network
        if self.host.startswith("."):
            return _host_name(host).endswith(self.host)
        if self.host:
            return _host_name(host) == self.host
        return True  # *:PORT

    def rank(self) -> tuple[int, int, int]:
        """How specific the entry is: a port first, then a host name over a range, then the prefix length."""
        if self.host:
            kind, length = (1, len(self.host)) if self.host.startswith(".") else (2, 0)
        else:
            kind, length = 0, self.network.prefixlen if self.network is not None else -1
        return (self.port is not None, kind, length)


def parse_rule(text: str, flag: str = ALLOW_FLAG) -> Rule:
    """An entry: CIDR, IP, HOST or *.DOMAIN, each with an optional :PORT ([v6]:PORT), or *:PORT."""
    value = text.strip().lower()
    inner, port_text, has_port = value, "", False
    if value.startswith("["):
        inner, _, rest = value[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise InvalidArgument(f"invalid {flag} entry {text[:_MAX_SHOWN]!r}: want [IPv6]:PORT")
        port_text, has_port = rest[1:], bool(rest)
    elif value.count(":") == 1:
        inner, port_text = value.split(":")
        has_port = True
    port: int | None = None
    if has_port:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InvalidArgument(f"invalid {flag} entry {text[:_MAX_SHOWN]!r}: the port must be 1 to 65535")
        port = int(port_text)
    if inner == "*":
        if port is None:
            raise InvalidArgument(f"invalid {flag} entry {text[:_MAX_SHOWN]!r}: '*' needs a port (*:PORT)")
        return Rule(text.strip(), port=port)
    try:
        network = ipaddress.ip_network(inner, strict=False)
    except ValueError:
        pass
    else:
        if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped is not None:
            raise InvalidArgument(f"invalid {flag} entry {text[:_MAX_SHOWN]!r}: write IPv4-mapped ranges as IPv4")
        return Rule(text.strip(), network=network, port=port)
    wildcard = inner.startswith("*.")
    name = _host_name(inner[2:] if wildcard else inner)
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise InvalidArgument(
            f"invalid {flag} entry {text[:_MAX_SHOWN]!r}: want CIDR, IP, HOST or *.DOMAIN, with an optional :PORT"
        )
    return Rule(text.strip(), host=f".{name}" if wildcard else name, port=port)


def split_entries(values: Iterable[str]) -> tuple[str, ...]:
    """Entries from repeated flags (or a list in the config file), each possibly comma-separated; blanks dropped."""
    return tuple(item.strip() for value in values for item in str(value).split(",") if item.strip())


def parse_rules(entries: Iterable[str], flag: str) -> tuple[Rule, ...]:
    """Entries from repeated or comma-separated values; blanks dropped; InvalidArgument on a bad one."""
    return tuple(parse_rule(item, flag) for item in split_entries(entries))


def is_local_address(ip: IPAddress) -> bool:
    """True when ip is an address of this host (a socket can be bound to it): a wildcard listener answers there."""
    if ip.is_loopback or ip.is_unspecified:
        return True
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((str(ip), 0))
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class Listener:
    """One of this process's (or its cluster's) listening addresses; ip None: every address (0.0.0.0, ::)."""

    ip: IPAddress | None
    port: int
    what: str

    def reached_by(self, ip: IPAddress, port: int) -> bool:
        """True when a connection to ip:port would reach this listener."""
        if port != self.port:
            return False
        if self.ip is None:
            return is_local_address(ip)
        return ip == self.ip or (ip.is_unspecified and self.ip.version == ip.version)


def _resolve_listener(host: str, port: int, what: str) -> tuple[list[Listener], bool]:
    """The listeners behind HOST:PORT and whether any is beyond loopback (an unresolvable name counts as beyond)."""
    name = host.strip("[]")
    try:
        addresses = [_address(name)]
    except ValueError:
        try:
            addresses = [_address(str(info[4][0])) for info in socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)]
        except (OSError, UnicodeError, ValueError):
            return [], True
    listeners = [Listener(None if ip.is_unspecified else ip, port, what) for ip in addresses]
    return listeners, any(not ip.is_loopback for ip in addresses)


@dataclass(frozen=True)
class FetchPolicy:
    """Decides whether an origin fetch may connect to an address (see the module docstring)."""

    allow: tuple[Rule, ...] = ()
    deny: tuple[Rule, ...] = ()
    own: tuple[Listener, ...] = ()
    refuse_loopback: bool = False
    component: str = "this process"

    @classmethod
    def build(
        cls,
        allow: Iterable[str],
        deny: Iterable[str],
        listeners: Sequence[tuple[str, int, str]],
        component: str,
    ) -> FetchPolicy:
        """The policy of a component with these (HOST, PORT, what) listeners: loopback is refused when any of them
        (a name is resolved) listens beyond loopback. InvalidArgument on a bad entry."""
        own: list[Listener] = []
        beyond = False
        for host, port, what in listeners:
            found, outside = _resolve_listener(host, port, what)
            own.extend(found)
            beyond = beyond or outside
        return cls(parse_rules(allow, ALLOW_FLAG), parse_rules(deny, DENY_FLAG), tuple(own), beyond, component)

    def summary(self) -> str:
        """One line for the startup log."""
        loopback = "refused (listening beyond loopback)" if self.refuse_loopback else "allowed (all on loopback)"
        own = ", ".join(sorted({f"{o.what} {o.ip or '*'}:{o.port}" for o in self.own})) or "none"
        text = f"link-local refused; loopback {loopback}; own addresses refused ({own})"
        for name, rules in (("allow", self.allow), ("deny", self.deny)):
            if rules:
                text += f"; {name} {', '.join(rule.text for rule in rules)}"
        return text

    def _decisive(self, host: str, ip: IPAddress, port: int) -> tuple[Rule, bool] | None:
        """The most specific matching entry and whether it denies."""
        best: tuple[tuple[int, int, int, bool], Rule, bool] | None = None
        for rules, denies in ((self.allow, False), (self.deny, True)):
            for rule in rules:
                if rule.matches(host, ip, port):
                    key = (*rule.rank(), denies)
                    if best is None or key > best[0]:
                        best = (key, rule, denies)
        return None if best is None else (best[1], best[2])

    def refusal(self, host: str, address: str, port: int) -> str | None:
        """Why a connection to address:port for the URL host host is refused, or None when it is allowed."""
        ip = _address(address)
        decisive = self._decisive(host, ip, port)
        for listener in self.own:
            if listener.reached_by(ip, port) and not (decisive and not decisive[1] and decisive[0].port is not None):
                return (
                    f"{self.component}'s own {listener.what} address (allow it with {ALLOW_FLAG} {_joined(ip, port)})"
                )
        if decisive is not None:
            rule, denies = decisive
            return f"denied by {DENY_FLAG} {rule.text}" if denies else None
        if any(ip.version == net.version and ip in net for net in LINK_LOCAL):
            return f"link-local address (cloud metadata; allow it with {ALLOW_FLAG} {ip})"
        if self.refuse_loopback and (ip.is_loopback or ip.is_unspecified):
            return f"loopback address, and {self.component} listens beyond loopback (allow it with {ALLOW_FLAG} {ip})"
        return None

    def check(self, host: str, address: str, port: int) -> None:
        """Raise OriginRefused when a connection to address:port for the URL host host is not allowed."""
        reason = self.refusal(host, address, port)
        if reason is not None:
            ip = _address(address)
            shown = _joined(ip, port) if _host_name(host) == str(ip) else f"{host} ({ip}):{port}"
            raise OriginRefused(f"origin {shown} not allowed: {reason}")


Resolver = Callable[..., list[tuple[Any, ...]]]
Opener = Callable[[int, tuple[Any, ...], float], socket.socket]


def open_socket(family: int, sockaddr: tuple[Any, ...], timeout: float) -> socket.socket:
    """A TCP connection to exactly sockaddr (no further name lookup)."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock


def connect_checked(
    host: str,
    port: int,
    timeout: float,
    policy: FetchPolicy,
    resolve: Resolver = socket.getaddrinfo,
    opener: Opener = open_socket,
) -> socket.socket:
    """Resolve host, then connect to the first of its addresses the policy allows, exactly the address checked.

    Raises OriginRefused when the policy refuses every address (nothing was connected to), else the last OSError.
    """
    refused: OriginRefused | None = None
    failed: OSError | None = None
    for family, _, _, _, sockaddr in resolve(host, port, 0, socket.SOCK_STREAM):
        try:
            policy.check(host, str(sockaddr[0]), port)
        except OriginRefused as exc:
            refused = refused or exc
            continue
        try:
            return opener(family, sockaddr, timeout)
        except OSError as exc:
            failed = exc
    if failed is not None:
        raise failed
    if refused is not None:
        raise refused
    raise OSError(f"no address for {host}")


def add_origin_policy_arguments(parser: argparse.ArgumentParser, component: str) -> None:
    """Add --origin-allow and --origin-deny (repeatable or comma-separated; lists in the config file)."""
    group = parser.add_argument_group("origin fetch policy")
    forms = "CIDR, IP, HOST or *.DOMAIN, each with an optional :PORT, or *:PORT; repeatable or comma-separated"
    group.add_argument(
        ALLOW_FLAG,
        metavar="ENTRY",
        action=ReplacingAppend,
        default=[],
        help=f"origins {component} may fetch although refused by default (link-local; loopback when it listens "
        f"beyond loopback; its own addresses only as IP:PORT): {forms}",
    )
    group.add_argument(
        DENY_FLAG,
        metavar="ENTRY",
        action=ReplacingAppend,
        default=[],
        help=f"origins {component} must not fetch (private ranges are allowed by default): {forms}",
    )
