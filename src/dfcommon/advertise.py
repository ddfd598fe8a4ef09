"""The address a server listening on 0.0.0.0 tells others to reach it at (its --advertise-ip).

Found, in order, from: the route to the first supernode, the route of the default gateway, the one
non-loopback interface address. A connected UDP socket reveals the route's source address and sends
nothing. A server that listens beyond loopback never advertises a loopback address: it refuses to start.
"""

from __future__ import annotations

import array
import fcntl
import ipaddress
import socket
import struct
from collections.abc import Callable, Sequence

from dfcommon.errors import InvalidArgument
from dfcommon.sizes import parse_hostport

# A TEST-NET-2 address (RFC 5737): nothing answers there, the kernel only picks the default route's source.
DEFAULT_ROUTE_PROBE = "198.51.100.1:9"
_SIOCGIFADDR = 0x8915

RouteResolver = Callable[[str], str | None]
InterfaceLister = Callable[[], list[str]]


def route_source(target: str) -> str | None:
    """The local IP the kernel would send from to reach HOST:PORT target (None: no route, no name)."""
    try:
        host, port = parse_hostport(target)
        family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(sockaddr)
            return str(probe.getsockname()[0])
    except (OSError, InvalidArgument, IndexError):
        return None


def interface_addresses() -> list[str]:
    """The IPv4 address of every interface that has one (loopback included), in interface order."""
    found: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            request = array.array("B", struct.pack("256s", name.encode()[:15]))
            try:
                fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, request)
            except OSError:
                continue  # no IPv4 address on this interface
            found.append(socket.inet_ntoa(request.tobytes()[20:24]))
    return found


def _usable(ip: str | None) -> bool:
    """An address others can be told: not loopback, not unspecified."""
    if not ip:
        return False
    address = ipaddress.ip_address(ip.split("%")[0])
    return not (address.is_loopback or address.is_unspecified)


def is_wildcard(host: str) -> bool:
    """Whether a listen host means every interface (0.0.0.0, ::, empty)."""
    return host in ("", "0.0.0.0", "::")


def choose_advertise_ip(
    listen_host: str,
    advertise_ip: str,
    toward: Sequence[str] = (),
    *,
    route: RouteResolver | None = None,
    interfaces: InterfaceLister | None = None,
) -> str:
    """The IP to advertise; InvalidArgument (one line) when a wildcard listener finds only loopback.

    route and interfaces default to route_source and interface_addresses (tests inject their own)."""
    route = route or route_source
    interfaces = interfaces or interface_addresses
    if advertise_ip:
        return advertise_ip
    if not is_wildcard(listen_host):
        return listen_host
    for target in (*toward[:1], DEFAULT_ROUTE_PROBE):
        source = route(target)
        if _usable(source):
            assert source is not None
            return source
    candidates = [ip for ip in interfaces() if _usable(ip)]
    if len(candidates) == 1:
        return candidates[0]
    found = f"several addresses ({', '.join(candidates)})" if candidates else "only loopback addresses"
    raise InvalidArgument(
        f"listening on {listen_host or '0.0.0.0'} but this host has {found} to tell peers: pass --advertise-ip IP "
        "(an address the other machines reach this one at)"
    )
