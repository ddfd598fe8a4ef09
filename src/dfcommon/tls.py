"""Mutual TLS between the cluster's components: one CA, a certificate and key per node, client certs required.

Every gRPC port a component opens for other hosts (the supernode's, a dfdaemon's PeerService) and every channel
between components uses the same three files. A server accepts only clients whose certificate the CA signed; a
client checks the server's certificate against the CA and against the address it dials (an IP or DNS SAN), or
against server_name when the cluster's addresses are not known when certificates are made (compose, DHCP).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import ssl
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import grpc

from dfcommon.errors import InvalidArgument

log = logging.getLogger(__name__)

TLS_FLAGS = ("--tls-cert", "--tls-key", "--tls-ca")


@dataclass(frozen=True)
class TlsConfig:
    """The node's certificate chain and key (PEM), the cluster CA (PEM), and the name servers' certificates carry."""

    cert: Path
    key: Path
    ca: Path
    server_name: str = ""  # empty: the host part of the address dialled must be in the server's certificate

    def validated(self) -> TlsConfig:
        """Check that the files are readable PEM, the key matches the certificate, and the CA loads."""
        for flag, path in zip(TLS_FLAGS, (self.cert, self.key, self.ca), strict=True):
            try:
                head = path.read_bytes()[:4096]
            except OSError as err:
                raise InvalidArgument(f"{flag} {str(path)!r}: {err.strerror or err}") from None
            if b"-----BEGIN " not in head:
                raise InvalidArgument(f"{flag} {str(path)!r} is not a PEM file")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            context.load_cert_chain(self.cert, self.key)
        except (ssl.SSLError, ValueError) as err:
            raise InvalidArgument(f"--tls-key does not match --tls-cert, or either is unreadable: {err}") from None
        try:
            context.load_verify_locations(cafile=str(self.ca))
        except ssl.SSLError as err:
            raise InvalidArgument(f"--tls-ca {str(self.ca)!r} holds no usable CA certificate: {err}") from None
        if self.server_name and any(c.isspace() or c in "/:@" for c in self.server_name):
            raise InvalidArgument(f"--tls-server-name {self.server_name!r} is not a host name")
        _ = self._pem
        return self

    def server_credentials(self) -> grpc.ServerCredentials:
        """Server side: this node's certificate; clients must present one the CA signed."""
        key, cert, ca = self._pem
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """Client side: trust only the CA, present this node's certificate."""
        key, cert, ca = self._pem
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)

    @cached_property
    def _pem(self) -> tuple[bytes, bytes, bytes]:
        """Key, certificate and CA as read once (at start-up: validated() reads them), not on every new channel."""
        return self.key.read_bytes(), self.cert.read_bytes(), self.ca.read_bytes()

    def channel_options(self) -> list[tuple[str, str]]:
        """Channel options: the name checked in servers' certificates when it is not the address dialled."""
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


def tls_config(cert: str | None, key: str | None, ca: str | None, server_name: str = "") -> TlsConfig | None:
    """TlsConfig from the three flags (all or none; None: plaintext). InvalidArgument with one line otherwise."""
    given = [bool(value) for value in (cert, key, ca)]
    if not any(given):
        if server_name:
            raise InvalidArgument("--tls-server-name needs --tls-cert, --tls-key and --tls-ca")
        return None
    if not all(given):
        missing = [flag for flag, ok in zip(TLS_FLAGS, given, strict=True) if not ok]
        raise InvalidArgument(f"TLS needs --tls-cert, --tls-key and --tls-ca together; missing {', '.join(missing)}")
    return TlsConfig(Path(str(cert)), Path(str(key)), Path(str(ca)), server_name).validated()


def add_tls_arguments(parser: argparse.ArgumentParser, role: str) -> None:
    """--tls-cert/--tls-key/--tls-ca/--tls-server-name; role says what they secure, for --help."""
    group = parser.add_argument_group(
        "mutual TLS", f"all three files turn TLS on for {role}; without them gRPC is plaintext (docs/security.md)"
    )
    group.add_argument("--tls-cert", default=None, metavar="PEM", help="this node's certificate (chain)")
    group.add_argument("--tls-key", default=None, metavar="PEM", help="this node's private key")
    group.add_argument("--tls-ca", default=None, metavar="PEM", help="the cluster CA, which signed every peer's cert")
    group.add_argument(
        "--tls-server-name",
        default="",
        metavar="NAME",
        help="name every server certificate carries, checked instead of the address dialled (for clusters whose "
        "addresses are not known when certificates are made)",
    )


def tls_from_args(args: argparse.Namespace) -> TlsConfig | None:
    """TlsConfig from the flags add_tls_arguments added."""
    return tls_config(args.tls_cert, args.tls_key, args.tls_ca, args.tls_server_name)


def is_loopback_host(host: str) -> bool:
    """True for a loopback IP or "localhost" (a name that resolves elsewhere is not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def add_port(server: grpc.aio.Server, address: str, tls: TlsConfig | None) -> int:
    """Bind address ("HOST:PORT") with TLS when configured; the bound port (0 when binding failed)."""
    if tls is None:
        return server.add_insecure_port(address)
    return server.add_secure_port(address, tls.server_credentials())


def warn_if_plaintext_beyond_loopback(component: str, host: str, tls: TlsConfig | None) -> bool:
    """Log one warning when a plaintext gRPC port listens beyond loopback; True when it did."""
    if tls is not None or is_loopback_host(host):
        return False
    log.warning(
        "%s serves gRPC in plaintext on %s, beyond loopback: any host that reaches it can join the swarm and read "
        "what it serves; give --tls-cert, --tls-key and --tls-ca (docs/security.md)",
        component,
        host,
    )
    return True
