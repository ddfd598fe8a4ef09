"""Access grants (dfcommon.grants): what a supernode signs, and every way a PeerService refuses one."""

from __future__ import annotations

import pytest
from dandelion.common.v1 import common_pb2

from dfcommon import grants
from dfcommon.grants import GrantIssuer, GrantKeys, GrantRefused, key_id_of

NOW = 1_800_000_000.0
TASK = "a" * 64
HOST = "host-1"


class Clock:
    """A settable wall clock."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def keys_knowing(*issuers: GrantIssuer, clock: Clock | None = None) -> GrantKeys:
    keys = GrantKeys(clock) if clock is not None else GrantKeys()  # the issuers' clock: the wall clock unless given
    for issuer in issuers:
        assert keys.learn(issuer.key_id, issuer.public_key)
    return keys


def refusal(keys: GrantKeys, grant: common_pb2.AccessGrant, task_id: str = TASK, host_id: str = HOST) -> str:
    with pytest.raises(GrantRefused) as caught:
        keys.check(grant, task_id, host_id)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_a_grant_lets_its_host_read_its_task_until_it_expires() -> None:
    clock = Clock()
    issuer = GrantIssuer(ttl=60, clock=clock)
    keys = keys_knowing(issuer, clock=clock)
    grant = issuer.issue(TASK, HOST)
    claims = common_pb2.GrantClaims.FromString(grant.claims)
    assert (claims.task_id, claims.host_id, claims.key_id) == (TASK, HOST, issuer.key_id)
    assert claims.expires_at_unix_ms == (NOW + 60) * 1000
    keys.check(grant, TASK, HOST)
    clock.now += 59.9
    keys.check(grant, TASK, HOST)
    clock.now += 0.2
    assert refusal(keys, grant).startswith("access grant expired 0.1s ago")
    assert issuer.renew_every == 20


@pytest.mark.parametrize(
    ("task_id", "host_id", "why"),
    [("b" * 64, HOST, "another task"), (TASK, "host-2", "another host"), (TASK, "", "another host")],
)
def test_a_grant_is_bound_to_its_task_and_host(task_id: str, host_id: str, why: str) -> None:
    issuer = GrantIssuer()
    assert why in refusal(keys_knowing(issuer), issuer.issue(TASK, HOST), task_id, host_id)


def test_missing_forged_and_malformed_grants_are_refused() -> None:
    issuer = GrantIssuer()
    keys = keys_knowing(issuer)
    good = issuer.issue(TASK, HOST)
    assert "no access grant" in refusal(keys, common_pb2.AccessGrant())
    assert "signature is invalid" in refusal(keys, common_pb2.AccessGrant(claims=good.claims, signature=bytes(64)))
    # Claims changed after signing (another task named with the old signature).
    other = common_pb2.GrantClaims.FromString(good.claims)
    other.task_id = "b" * 64
    swapped = common_pb2.AccessGrant(claims=other.SerializeToString(), signature=good.signature)
    assert "signature is invalid" in refusal(keys, swapped, task_id="b" * 64)
    assert "malformed" in refusal(keys, common_pb2.AccessGrant(claims=b"\xff\xff", signature=good.signature))
    assert "malformed" in refusal(keys, common_pb2.AccessGrant(claims=b"x" * 5000, signature=good.signature))


def test_a_grant_of_a_supernode_this_host_never_registered_with_is_refused() -> None:
    known, stranger = GrantIssuer(), GrantIssuer()
    keys = keys_knowing(known)
    assert "unknown supernode key" in refusal(keys, stranger.issue(TASK, HOST))
    # A stranger's grant that names the known key id does not verify either.
    claims = common_pb2.GrantClaims.FromString(stranger.issue(TASK, HOST).claims)
    claims.key_id = known.key_id
    body = claims.SerializeToString()
    forged = common_pb2.AccessGrant(claims=body, signature=stranger._key.sign(grants.DOMAIN + body))
    assert "signature is invalid" in refusal(keys, forged)


def test_keys_of_every_supernode_are_kept_and_bounded() -> None:
    first, second = GrantIssuer(), GrantIssuer()
    keys = keys_knowing(first, second)
    keys.check(first.issue(TASK, HOST), TASK, HOST)
    keys.check(second.issue(TASK, HOST), TASK, HOST)
    for _ in range(grants.MAX_KEYS):
        other = GrantIssuer()
        keys.learn(other.key_id, other.public_key)
    assert len(keys) == grants.MAX_KEYS
    assert "unknown supernode key" in refusal(keys, first.issue(TASK, HOST))  # the oldest went first


class CountedKey:
    """A public key that counts its signature checks."""

    def __init__(self, key: object) -> None:
        self.key = key
        self.checks = 0

    def verify(self, signature: bytes, data: bytes) -> None:
        self.checks += 1
        self.key.verify(signature, data)  # type: ignore[attr-defined]


def test_a_grant_presented_again_is_not_checked_again_but_still_expires_and_is_bound() -> None:
    """A child presents its grant with every DownloadPieces call: its signature is checked once, and what it may
    read (task, host, expiry, a key still known) is checked every time."""
    clock = Clock()
    issuer = GrantIssuer(ttl=60, clock=clock)
    keys = keys_knowing(issuer, clock=clock)
    counted = CountedKey(keys._keys[issuer.key_id])
    keys._keys[issuer.key_id] = counted  # type: ignore[assignment]
    grant = issuer.issue(TASK, HOST)
    for _ in range(5):
        keys.check(grant, TASK, HOST)
    assert counted.checks == 1
    assert "another task" in refusal(keys, grant, task_id="b" * 64)
    assert "another host" in refusal(keys, grant, host_id="host-2")
    forged = common_pb2.AccessGrant(claims=grant.claims, signature=bytes(64))  # same claims, not its signature
    assert "signature is invalid" in refusal(keys, forged)
    clock.now += 60.1
    assert refusal(keys, grant).startswith("access grant expired")
    clock.now = NOW
    for _ in range(grants.MAX_KEYS):  # the issuer's key is forgotten: its grants with it
        other = GrantIssuer()
        keys.learn(other.key_id, other.public_key)
    assert "unknown supernode key" in refusal(keys, grant)


def test_malformed_keys_are_not_learned() -> None:
    issuer = GrantIssuer()
    keys = GrantKeys()
    assert not keys.learn("0" * 16, issuer.public_key)  # an id that is not the key's
    assert not keys.learn(key_id_of(b"short"), b"short")
    assert len(keys) == 0


@pytest.mark.parametrize("ttl", [0.5, 86401.0])
def test_ttl_out_of_range(ttl: float) -> None:
    with pytest.raises(ValueError, match="grant ttl"):
        GrantIssuer(ttl=ttl)
