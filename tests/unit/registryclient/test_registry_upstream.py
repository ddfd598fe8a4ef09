"""Upstream client logic against httpx.MockTransport: Accept lines, Bearer flow, token and grant caches."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json

import httpx
import pytest

from registryclient.config import ClientConfig
from registryclient.credentials import Credentials
from registryclient.errors import RegistryError
from registryclient.upstream import Upstream

BASE = "http://registry.test"
REALM = "http://auth.test/token"
MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}).encode()
DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
BLOB = "sha256:" + "c" * 64
ALICE = Credentials.from_header("Basic " + base64.b64encode(b"alice:pw").decode())
ACCEPT = ["application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"]


class FakeRegistry:
    """A token-auth registry: /token gives tokens to alice (or anonymous), the API wants a valid token."""

    def __init__(self, expires_in: int = 300, anonymous: bool = True) -> None:
        self.seen: list[httpx.Request] = []
        self.tokens_issued = 0
        self.expires_in = expires_in
        self.anonymous = anonymous

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if request.url.host == "auth.test":
            auth = request.headers.get("authorization")
            if (auth is not None and auth != ALICE.header) or (auth is None and not self.anonymous):
                return httpx.Response(401)
            self.tokens_issued += 1
            return httpx.Response(200, json={"token": f"t{self.tokens_issued}", "expires_in": self.expires_in})
        if not request.headers.get("authorization", "").startswith("Bearer t"):
            scope = "repository:ns/img:pull" if "/ns/img/" in request.url.path else ""
            challenge = f'Bearer realm="{REALM}",service="reg"' + (f',scope="{scope}"' if scope else "")
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        if request.url.path.endswith("/manifests/latest"):
            headers = {"Content-Type": ACCEPT[0], "Docker-Content-Digest": DIGEST, "Content-Length": str(len(MANIFEST))}
            return httpx.Response(200, headers=headers, content=b"" if request.method == "HEAD" else MANIFEST)
        if "/blobs/" in request.url.path:
            return httpx.Response(200, headers={"Content-Length": "1234"})
        return httpx.Response(200, json={})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def upstream_for(fake: FakeRegistry, clock: Clock | None = None) -> Upstream:
    return Upstream(ClientConfig(registry=BASE), transport=httpx.MockTransport(fake), clock=clock or Clock())


async def test_every_accept_line_is_forwarded_separately() -> None:
    fake = FakeRegistry()
    upstream = upstream_for(fake)
    manifest = await upstream.manifest("GET", BASE, "ns/img", "latest", ACCEPT, ALICE)
    assert (manifest.body, manifest.digest, manifest.length) == (MANIFEST, DIGEST, len(MANIFEST))
    final = fake.seen[-1]
    assert final.headers.get_list("accept") == ACCEPT
    assert [v for k, v in final.headers.raw if k.lower() == b"accept"] == [a.encode() for a in ACCEPT]
    await upstream.aclose()


async def test_bearer_flow_uses_the_challenge_scope_and_caches_the_token() -> None:
    fake = FakeRegistry()
    clock = Clock()
    upstream = upstream_for(fake, clock)
    for _ in range(3):
        await upstream.manifest("HEAD", BASE, "ns/img", "latest", ACCEPT, ALICE)
    token_requests = [r for r in fake.seen if r.url.host == "auth.test"]
    assert len(token_requests) == 1
    assert dict(token_requests[0].url.params) == {"service": "reg", "scope": "repository:ns/img:pull"}
    assert token_requests[0].headers["authorization"] == ALICE.header
    # After the token expires (minus the margin) a new one is fetched.
    clock.now += 300 - 10 + 1
    await upstream.manifest("HEAD", BASE, "ns/img", "latest", ACCEPT, ALICE)
    assert fake.tokens_issued == 2
    await upstream.aclose()


async def test_tokens_are_per_credentials() -> None:
    fake = FakeRegistry()
    upstream = upstream_for(fake)
    await upstream.manifest("HEAD", BASE, "ns/img", "latest", ACCEPT, ALICE)
    await upstream.manifest("HEAD", BASE, "ns/img", "latest", ACCEPT, Credentials())
    anonymous_token_request = [r for r in fake.seen if r.url.host == "auth.test"][-1]
    assert "authorization" not in anonymous_token_request.headers
    assert fake.tokens_issued == 2
    await upstream.aclose()


async def test_refused_credentials_get_a_basic_challenge() -> None:
    upstream = upstream_for(FakeRegistry(anonymous=False))
    wrong = Credentials.from_header("Basic " + base64.b64encode(b"alice:wrong").decode())
    with pytest.raises(RegistryError, match="refused the credentials") as info:
        await upstream.check_login(BASE, wrong)
    assert info.value.status == 401
    assert info.value.headers["WWW-Authenticate"].startswith("Basic realm=")
    await upstream.aclose()


async def test_anonymous_clients_get_the_upstreams_bearer_challenge() -> None:
    fake = FakeRegistry(anonymous=False)
    upstream = upstream_for(fake)
    with pytest.raises(RegistryError, match="requires authentication") as info:
        await upstream.check_login(BASE, Credentials())
    assert info.value.headers["WWW-Authenticate"] == f'Bearer realm="{REALM}",service="reg"'
    assert fake.tokens_issued == 0 and not [r for r in fake.seen if r.url.host == "auth.test"]
    with pytest.raises(RegistryError) as info:
        await upstream.manifest("GET", BASE, "ns/img", "latest", ACCEPT, Credentials())
    assert info.value.status == 401
    assert 'scope="repository:ns/img:pull"' in info.value.headers["WWW-Authenticate"]
    await upstream.aclose()


async def test_blob_grants_are_cached_per_credentials_for_the_ttl() -> None:
    fake = FakeRegistry()
    clock = Clock()
    upstream = upstream_for(fake, clock)
    grant = await upstream.authorize_blob(BASE, "ns/img", BLOB, ALICE)
    assert grant.length == 1234
    assert grant.url == f"{BASE}/v2/ns/img/blobs/{BLOB}"
    assert grant.headers == {"Authorization": "Bearer t1"}

    def heads() -> int:
        return len([r for r in fake.seen if r.method == "HEAD"])

    before = heads()
    assert await upstream.authorize_blob(BASE, "ns/img", BLOB, ALICE) == grant
    assert heads() == before
    await upstream.authorize_blob(BASE, "ns/img", BLOB, Credentials())
    assert heads() > before  # another client is asked about separately
    clock.now += 61
    before = heads()
    await upstream.authorize_blob(BASE, "ns/img", BLOB, ALICE)
    assert heads() == before + 1
    await upstream.aclose()


async def test_manifest_not_matching_its_digest_is_refused() -> None:
    def lying(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": ACCEPT[0], "Docker-Content-Digest": BLOB}, content=MANIFEST)

    upstream = Upstream(ClientConfig(registry=BASE), transport=httpx.MockTransport(lying))
    with pytest.raises(RegistryError, match="does not match its digest") as info:
        await upstream.manifest("GET", BASE, "ns/img", "latest", ACCEPT, Credentials())
    assert info.value.status == 502
    with pytest.raises(RegistryError, match="does not match its digest"):
        await upstream.manifest("GET", BASE, "ns/img", BLOB, ACCEPT, Credentials())
    await upstream.aclose()


async def test_oversized_answers_are_refused() -> None:
    def huge(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": ACCEPT[0]}, content=b"x" * 2048)

    config = ClientConfig(registry=BASE, max_manifest_bytes=1024)
    upstream = Upstream(config, transport=httpx.MockTransport(huge))
    with pytest.raises(RegistryError, match="over 1024 bytes"):
        await upstream.manifest("GET", BASE, "ns/img", "latest", ACCEPT, Credentials())
    await upstream.aclose()


async def test_parallel_requests_share_one_token_request() -> None:
    fake = FakeRegistry()
    upstream = upstream_for(fake)
    blobs = ["sha256:" + f"{i:064x}" for i in range(5)]
    grants = await asyncio.gather(*(upstream.authorize_blob(BASE, "ns/img", blob, ALICE) for blob in blobs))
    assert {g.headers["Authorization"] for g in grants} == {"Bearer t1"}
    assert fake.tokens_issued == 1
    await upstream.aclose()


async def test_a_refused_cached_token_is_replaced() -> None:
    fake = FakeRegistry()
    upstream = upstream_for(fake)
    await upstream.manifest("HEAD", BASE, "ns/img", "latest", ACCEPT, ALICE)
    fake.tokens_issued = 100  # the registry forgets t1 (say, revoked): only t101 and later are valid
    original = fake.__call__

    def revoking(request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") == "Bearer t1":
            return httpx.Response(401, headers={"WWW-Authenticate": f'Bearer realm="{REALM}",service="reg"'})
        return original(request)

    upstream._client._transport = httpx.MockTransport(revoking)
    manifest = await upstream.manifest("HEAD", BASE, "ns/img", "latest", ACCEPT, ALICE)
    assert manifest.digest == DIGEST
    assert fake.tokens_issued == 101
    await upstream.aclose()


def gated(fake: FakeRegistry, gate: asyncio.Event) -> Upstream:
    """An upstream whose blob HEADs wait for gate: the asks overlap."""

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD" and "/blobs/" in request.url.path:
            await gate.wait()
        return fake(request)

    return Upstream(ClientConfig(registry=BASE), transport=httpx.MockTransport(handler), clock=Clock())


def blob_heads(fake: FakeRegistry) -> int:
    return len([r for r in fake.seen if r.method == "HEAD" and "/blobs/" in r.url.path])


async def test_one_blob_asked_for_at_once_is_asked_once_and_fresh_asks_again() -> None:
    alone = FakeRegistry()
    await upstream_for(alone).authorize_blob(BASE, "ns/img", BLOB, ALICE)
    fake, gate = FakeRegistry(), asyncio.Event()
    upstream = gated(fake, gate)
    asks = [asyncio.ensure_future(upstream.authorize_blob(BASE, "ns/img", BLOB, ALICE)) for _ in range(5)]
    await asyncio.sleep(0.05)
    gate.set()
    grants = await asyncio.gather(*asks)
    assert len({id(g) for g in grants}) == 1  # the prefetch and the client's GET at once: one question
    assert blob_heads(fake) == blob_heads(alone)
    fresh = await upstream.authorize_blob(BASE, "ns/img", BLOB, ALICE, fresh=True)
    assert blob_heads(fake) > blob_heads(alone) and fake.tokens_issued == 2, "fresh: a new token, a new question"
    assert fresh.headers == {"Authorization": "Bearer t2"}
    await upstream.aclose()


async def test_a_cancelled_first_ask_leaves_the_others_to_ask_again() -> None:
    fake, gate = FakeRegistry(), asyncio.Event()
    upstream = gated(fake, gate)
    first = asyncio.ensure_future(upstream.authorize_blob(BASE, "ns/img", BLOB, ALICE))
    await asyncio.sleep(0.05)
    second = asyncio.ensure_future(upstream.authorize_blob(BASE, "ns/img", BLOB, ALICE))
    await asyncio.sleep(0.05)
    first.cancel()
    await asyncio.sleep(0.05)
    gate.set()
    grant = await second
    assert first.cancelled() and grant.length == 1234
    await upstream.aclose()
