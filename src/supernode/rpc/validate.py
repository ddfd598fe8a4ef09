"""Bounds and shapes of every request field: InvalidArgument with one line when violated."""

from __future__ import annotations

import ipaddress
import re

from dandelion.common.v1 import common_pb2
from dandelion.scheduler.v1 import scheduler_pb2

from dfcommon.byterange import parse_byte_range
from dfcommon.digest import parse_digest
from dfcommon.errors import InvalidArgument
from dfcommon.identity import validate_url
from dfcommon.location import MAX_LOCATION
from dfcommon.sizes import parse_ip
from supernode.hosts import HostSpec
from supernode.readers import MAX_PIECE_NUMBER
from supernode.resource.peer import MAX_WINDOW

MAX_ID = 128
MAX_HEADERS = 64
MAX_HEADER_FIELD = 8192
MAX_FILTERED_PARAMS = 64
MAX_NAME = 256
MAX_RESULTS = 8192
MAX_UPLOAD_SLOTS = 1024
MAX_DIGEST = 100  # "<algorithm>:<hex>" of a piece
MAX_APPLIED_RANGES = 1024  # read_ranges_applied: as many as a supernode sends (it splits a read a few times)
DEFAULT_UPLOAD_SLOTS = 8
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def ident(value: str, what: str) -> str:
    """A non-empty, bounded id."""
    if not value:
        raise InvalidArgument(f"{what} is required")
    if len(value) > MAX_ID:
        raise InvalidArgument(f"{what} is longer than {MAX_ID} characters")
    return value


def url_meta(meta: common_pb2.UrlMeta) -> common_pb2.UrlMeta:
    """URL scheme and length, header count and sizes, digest, filtered params and range."""
    validate_url(meta.url)
    if len(meta.headers) > MAX_HEADERS:
        raise InvalidArgument(f"too many headers: {len(meta.headers)} > {MAX_HEADERS}")
    for name, value in meta.headers.items():
        if len(name) > MAX_HEADER_FIELD or len(value) > MAX_HEADER_FIELD:
            raise InvalidArgument(f"header longer than {MAX_HEADER_FIELD} characters")
        if not _TOKEN.match(name):
            raise InvalidArgument(f"invalid header name {name[:40]!r}")
        if any(c in value for c in "\r\n\0"):
            raise InvalidArgument(f"invalid value of header {name[:40]!r}")  # never echo the value
    if meta.digest:
        parse_digest(meta.digest)
    if len(meta.filtered_query_params) > MAX_FILTERED_PARAMS:
        raise InvalidArgument(f"too many filtered query params: > {MAX_FILTERED_PARAMS}")
    if any(len(p) > MAX_NAME for p in meta.filtered_query_params):
        raise InvalidArgument(f"filtered query param longer than {MAX_NAME} characters")
    if meta.range:
        parse_byte_range(meta.range)
    return meta


def host(info: scheduler_pb2.HostInfo, caller: str = "") -> HostSpec:
    """A registering host's description; an unspecified ip (0.0.0.0, ::) becomes the caller's address.

    caller is grpc's context.peer(), e.g. "ipv4:10.0.0.7:51234" or "ipv6:[fd00::7]:51234".
    """
    if len(info.hostname) > MAX_NAME:
        raise InvalidArgument(f"hostname must be at most {MAX_NAME} characters")
    if len(info.location) > MAX_LOCATION:  # what dfdaemon and supernode --location check at start-up
        raise InvalidArgument(f"location must be at most {MAX_LOCATION} characters")
    if not info.ip:
        raise InvalidArgument("host ip is required")
    ip = parse_ip(info.ip)
    if ipaddress.ip_address(ip).is_unspecified:
        ip = caller_ip(caller)
    if not 0 < info.port < 65536:
        raise InvalidArgument(f"invalid host port {info.port}: want 1-65535")
    if info.upload_slots > MAX_UPLOAD_SLOTS:
        raise InvalidArgument(f"upload_slots must be at most {MAX_UPLOAD_SLOTS}")
    slots = info.upload_slots or DEFAULT_UPLOAD_SLOTS
    return HostSpec(info.hostname, ip, info.port, slots, info.location, info.seed)


def caller_ip(peer: str) -> str:
    """The IP in grpc's context.peer() string; InvalidArgument when the caller has none (unix socket)."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return parse_ip(rest.rpartition(":")[0])
    if kind == "ipv6":
        return parse_ip(rest.rpartition(":")[0].strip("[]"))
    raise InvalidArgument("host ip 0.0.0.0 needs a caller reachable over IP: send the host's own ip")


def sync_request(request: scheduler_pb2.SyncPiecesRequest) -> None:
    """Window and result count of one SyncPieces message."""
    if request.window > MAX_WINDOW:
        raise InvalidArgument(f"window {request.window} is larger than {MAX_WINDOW}")
    if len(request.results) > MAX_RESULTS:
        raise InvalidArgument(f"too many results in one message: > {MAX_RESULTS}")
    for result in request.results:
        if len(result.parent_peer_id) > MAX_ID:
            raise InvalidArgument(f"parent_peer_id is longer than {MAX_ID} characters")
        if len(result.digest) > MAX_DIGEST:
            raise InvalidArgument(f"a piece digest is longer than {MAX_DIGEST} characters")
    if len(request.read_ranges_applied) > MAX_APPLIED_RANGES:
        raise InvalidArgument(f"too many read_ranges_applied in one message: > {MAX_APPLIED_RANGES}")
    for applied in request.read_ranges_applied:
        if not applied.first <= applied.last < MAX_PIECE_NUMBER:
            raise InvalidArgument(f"read_ranges_applied {applied.first}-{applied.last} is not a range of pieces")
