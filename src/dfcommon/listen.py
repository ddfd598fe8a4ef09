"""Listening sockets for the HTTP servers (the registry mirror, the supernode's web view), bound before they serve
so that a taken address is one line at start-up."""

from __future__ import annotations

import socket

from dfcommon.errors import Unavailable


def listening_socket(host: str, port: int, what: str, backlog: int = 1024) -> socket.socket:
    """A listening non-blocking TCP socket on host (IPv4 or IPv6, brackets allowed) and port; Unavailable naming
    what listens when the address is taken or not ours."""
    host = host.strip("[]")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as err:
        sock.close()
        raise Unavailable(f"{what} cannot listen on {host}:{port}: {err.strerror or err}") from None
    return sock
