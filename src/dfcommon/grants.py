"""Access grants: a supernode's signed, short-lived permission for one host to read one task's pieces from peers.

The supernode signs (GrantIssuer: an Ed25519 key made at start-up, never written anywhere); every PeerService checks
(GrantKeys: the public keys of the supernodes its host registered with). A grant names the task, the host it was
issued to, its expiry and the signing key (dandelion.common.v1.GrantClaims); the signature covers DOMAIN + claims.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from dandelion.common.v1 import common_pb2
from google.protobuf.message import DecodeError

from dfcommon.errors import PermissionDenied

log = logging.getLogger(__name__)

DOMAIN = b"dandelion.grant.v1\x00"  # signatures over grants can be mistaken for no other signed bytes
DEFAULT_TTL = 600.0  # seconds a grant is accepted (supernode --grant-ttl); renewed every TTL / RENEW_PARTS
MIN_TTL, MAX_TTL = 1.0, 86400.0
RENEW_PARTS = 3  # a renewed grant arrives with 2/3 of the old one's life left: it covers clock skew up to that
MAX_KEYS = 64  # keys a host keeps (every supernode restart makes a new one); the oldest learned goes first
MAX_CLAIMS = 1024  # bytes; real claims are about 130
# Grants whose signature checked out, remembered by their exact bytes: a child presents the same grant with every
# DownloadPieces call (one per few pieces), and an Ed25519 check costs 100-300 µs of CPU on these machines.
MAX_VERIFIED = 1024
PUBLIC_KEY_SIZE = 32
KEY_ID_HEX = 16


def key_id_of(public_key: bytes) -> str:
    """The id of a raw Ed25519 public key: the first 16 hex digits of its sha256."""
    return hashlib.sha256(public_key).hexdigest()[:KEY_ID_HEX]


def _signed_bytes(claims: bytes) -> bytes:
    return DOMAIN + claims


class GrantRefused(PermissionDenied):
    """A PeerService call without a valid grant for its task and requesting host; str() is one line."""


class GrantIssuer:
    """The supernode's signing key (made here, kept in memory only) and the grants it signs."""

    def __init__(self, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.time) -> None:
        if not MIN_TTL <= ttl <= MAX_TTL:
            raise ValueError(f"grant ttl must be between {MIN_TTL:g}s and {MAX_TTL:g}s, got {ttl:g}s")
        self.ttl = ttl
        self._clock = clock
        self._key = Ed25519PrivateKey.generate()
        self.public_key = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = key_id_of(self.public_key)

    @property
    def renew_every(self) -> float:
        """Seconds between renewals on a peer's piece stream."""
        return self.ttl / RENEW_PARTS

    def issue(self, task_id: str, host_id: str) -> common_pb2.AccessGrant:
        """A grant for host_id to read task_id's pieces, valid for ttl seconds from now."""
        expires = int((self._clock() + self.ttl) * 1000)
        claims = common_pb2.GrantClaims(
            task_id=task_id, host_id=host_id, expires_at_unix_ms=expires, key_id=self.key_id
        ).SerializeToString()
        return common_pb2.AccessGrant(claims=claims, signature=self._key.sign(_signed_bytes(claims)))


class GrantKeys:
    """The grant keys of every supernode this host registered with (by key id), and the check a PeerService makes."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._keys: OrderedDict[str, Ed25519PublicKey] = OrderedDict()
        self._clock = clock
        self._verified: OrderedDict[tuple[bytes, bytes], common_pb2.GrantClaims] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def learn(self, key_id: str, public_key: bytes) -> bool:
        """Keep a supernode's key (RegisterHostResponse); False, and logged, when the key or its id is malformed."""
        if len(public_key) != PUBLIC_KEY_SIZE or key_id != key_id_of(public_key):
            log.warning("ignoring a malformed grant key from the supernode (id %.20r)", key_id)
            return False
        if key_id in self._keys:
            self._keys.move_to_end(key_id)
            return True
        self._keys[key_id] = Ed25519PublicKey.from_public_bytes(public_key)
        while len(self._keys) > MAX_KEYS:
            self._keys.popitem(last=False)
        log.info("learned supernode grant key %s", key_id)
        return True

    def check(self, grant: common_pb2.AccessGrant, task_id: str, host_id: str) -> None:
        """Nothing when grant lets host_id read task_id now; GrantRefused (one line) otherwise."""
        if not grant.claims or not grant.signature:
            raise GrantRefused("no access grant: register the task with the supernode first")
        if len(grant.claims) > MAX_CLAIMS:
            raise GrantRefused("access grant is malformed")
        claims = self._verified_claims(grant)
        if claims.task_id != task_id:
            raise GrantRefused("access grant is for another task")
        if claims.host_id != host_id:
            raise GrantRefused("access grant is for another host")
        late = self._clock() * 1000 - claims.expires_at_unix_ms
        if late > 0:
            raise GrantRefused(f"access grant expired {late / 1000:.1f}s ago")

    def _verified_claims(self, grant: common_pb2.AccessGrant) -> common_pb2.GrantClaims:
        """The grant's claims once its signature checked out with a key this host knows (remembered by the grant's
        exact bytes while that key is known); GrantRefused otherwise."""
        seen = (grant.claims, grant.signature)
        claims = self._verified.get(seen)
        if claims is not None and claims.key_id in self._keys:
            self._verified.move_to_end(seen)
            return claims
        try:
            claims = common_pb2.GrantClaims.FromString(grant.claims)
        except DecodeError:
            raise GrantRefused("access grant is malformed") from None
        key = self._keys.get(claims.key_id)
        if key is None:
            raise GrantRefused(f"access grant signed by an unknown supernode key {claims.key_id[:KEY_ID_HEX]!r}")
        try:
            key.verify(grant.signature, _signed_bytes(grant.claims))
        except InvalidSignature:
            raise GrantRefused("access grant signature is invalid") from None
        self._verified[seen] = claims
        while len(self._verified) > MAX_VERIFIED:
            self._verified.popitem(last=False)
        return claims
