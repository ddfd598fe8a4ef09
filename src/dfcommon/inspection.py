"""Who may call the inspection RPCs (ListTasks, GetTask, ListHosts, ListCache): they show every task's URL,
which hosts hold it, and the repository names of private images.

- With mutual TLS: only clients whose certificate (signed by the cluster CA) has an admin common name
  (`--admin-cn`, default dandelion-admin); with `--open-inspection` any certificate the CA signed.
- Without TLS: only callers on loopback or a unix socket; with `--open-inspection` everyone.
"""

from __future__ import annotations

import argparse
import ipaddress
from dataclasses import dataclass, field
from typing import Any

import grpc

from dfcommon.errors import DandelionError, InvalidArgument

DEFAULT_ADMIN_CN = "dandelion-admin"


class InspectionRefused(DandelionError):
    """The caller may not inspect this component."""

    code = grpc.StatusCode.PERMISSION_DENIED


def peer_is_local(peer: str) -> bool:
    """True for a gRPC peer string ("ipv4:127.0.0.1:5", "ipv6:[::1]:5", "unix:...") on this host's loopback."""
    if peer.startswith("unix:"):
        return True
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        host = rest.rsplit(":", 1)[0]
    elif kind == "ipv6":
        host = rest.rsplit(":", 1)[0].strip("[]").split("%")[0]
    else:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def common_names(context: grpc.aio.ServicerContext[Any, Any]) -> list[str]:
    """The common name(s) of the client certificate that TLS verified; empty on a plaintext call."""
    auth = context.auth_context() or {}
    return [value.decode("utf-8", "replace") for value in auth.get("x509_common_name", [])]


@dataclass(frozen=True)
class InspectionPolicy:
    """The rule one server applies to its inspection RPCs."""

    tls: bool = False
    admin_names: frozenset[str] = field(default_factory=lambda: frozenset({DEFAULT_ADMIN_CN}))
    open: bool = False

    def refusal(self, context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
        """Why this caller may not inspect, or None when it may."""
        return self.refusal_of(common_names(context), peer_is_local(context.peer()))

    def refusal_of(self, names: list[str], local: bool) -> str | None:
        """Why a caller with these verified certificate common names, on loopback or not, may not inspect (any
        transport: gRPC, the supernode's web view); None when it may."""
        if self.tls:
            if not names:
                return "inspection needs a client certificate signed by the cluster CA"
            if self.open or self.admin_names.intersection(names):
                return None
            return (
                f"inspection needs an admin certificate (common name {' or '.join(sorted(self.admin_names))}); "
                f"this one is {names[0]!r}"
            )
        if self.open or local:
            return None
        return "inspection answers only callers on this host's loopback (see --open-inspection)"

    def check(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """Raise InspectionRefused unless the caller may inspect."""
        reason = self.refusal(context)
        if reason is not None:
            raise InspectionRefused(reason)


def add_inspection_arguments(parser: argparse.ArgumentParser, rpcs: str) -> None:
    """--admin-cn and --open-inspection; rpcs names the inspection RPCs, for --help."""
    parser.add_argument(
        "--admin-cn",
        default=DEFAULT_ADMIN_CN,
        metavar="NAME[,NAME]",
        help=f"with TLS, client certificate common names allowed to call {rpcs} (default %(default)s)",
    )
    parser.add_argument(
        "--open-inspection",
        action="store_true",
        help=f"let any caller use {rpcs}: without TLS from any address (default: loopback only), with TLS any "
        "certificate the cluster CA signed (default: admin certificates only)",
    )


def parse_admin_names(text: str) -> frozenset[str]:
    """ "a,b" -> {"a", "b"}; at least one name."""
    names = frozenset(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise InvalidArgument("--admin-cn needs at least one common name")
    return names
