"""Mirror authentication against real registries: htpasswd Basic, token (Bearer) auth, swarm authorisation."""

from __future__ import annotations

import base64
import hashlib
import logging

import httpx
import pytest
from conftest import USERS
from fixtures.images import PushedImage
from fixtures.registry import Registry
from fixtures.token_server import TokenServer
from mirror_helpers import DOCKER_ACCEPT, DirectTransferer, MirrorRunner, SwarmCache

from mirror.config import MirrorConfig

ALICE = ("alice", USERS["alice"])
BOB = ("bob", USERS["bob"])
WRONG = ("alice", "not-her-password")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def headers(creds: tuple[str, str] | None = None) -> list[tuple[str, str]]:
    lines = [("Accept", value) for value in DOCKER_ACCEPT]
    return [*lines, ("Authorization", basic(*creds))] if creds else lines


def assert_basic_challenge(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith('Basic realm="')
    if response.request.method != "HEAD":
        assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


async def test_basic_upstream_login_flow(
    mirrors: MirrorRunner, basic_registry: Registry, transferer: DirectTransferer
) -> None:
    mirror = await mirrors.start(MirrorConfig(registry=basic_registry.url), transferer)
    async with httpx.AsyncClient() as client:
        anonymous = await client.get(f"{mirror}/v2/")
        right = await client.get(f"{mirror}/v2/", headers={"Authorization": basic(*ALICE)})
        wrong = await client.get(f"{mirror}/v2/", headers={"Authorization": basic(*WRONG)})
    assert_basic_challenge(anonymous)
    assert "requires authentication" in anonymous.json()["errors"][0]["message"]
    assert right.status_code == 200
    assert right.headers["docker-distribution-api-version"] == "registry/2.0"
    assert_basic_challenge(wrong)
    assert "refused the credentials" in wrong.json()["errors"][0]["message"]


async def test_basic_upstream_private_pull(
    mirrors: MirrorRunner,
    basic_registry: Registry,
    basic_image: PushedImage,
    transferer: DirectTransferer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    mirror = await mirrors.start(MirrorConfig(registry=basic_registry.url), transferer)
    manifest_url = f"{mirror}/v2/{basic_image.repository}/manifests/{basic_image.tag}"
    blob_url = f"{mirror}/v2/{basic_image.repository}/blobs/{basic_image.layer_digests[0]}"
    async with httpx.AsyncClient() as client:
        assert_basic_challenge(await client.get(manifest_url, headers=headers()))
        assert_basic_challenge(await client.get(manifest_url, headers=headers(WRONG)))
        assert_basic_challenge(await client.get(blob_url, headers=headers(WRONG)))
        manifest = await client.get(manifest_url, headers=headers(ALICE))
        blob = await client.get(blob_url, headers=headers(ALICE))
    assert manifest.status_code == 200
    assert manifest.headers["docker-content-digest"] == basic_image.manifest_digest
    assert blob.status_code == 200
    assert "sha256:" + hashlib.sha256(blob.content).hexdigest() == basic_image.layer_digests[0]
    # The swarm got the upstream URL, the digest as identity and the client's credentials for the origin.
    ((request, offset),) = transferer.requests
    assert (request.digest, offset) == (basic_image.layer_digests[0], 0)
    assert request.url == f"{basic_registry.url}/v2/{basic_image.repository}/blobs/{basic_image.layer_digests[0]}"
    assert request.headers == {"Authorization": basic(*ALICE)}
    # Credentials never reach a log line.
    assert caplog.records
    for secret in (USERS["alice"], basic(*ALICE).split()[1], basic(*WRONG).split()[1], "not-her-password"):
        assert secret not in caplog.text
        assert secret not in repr(request)


async def test_swarm_held_blob_needs_upstream_authorisation(
    mirrors: MirrorRunner, basic_registry: Registry, basic_image: PushedImage
) -> None:
    """Another node holds the private layer; only clients the upstream lets read the repository get it."""
    digest = basic_image.layer_digests[0]
    async with httpx.AsyncClient() as client:
        direct = await client.get(
            f"{basic_registry.url}/v2/{basic_image.repository}/blobs/{digest}", headers={"Authorization": basic(*ALICE)}
        )
    swarm = SwarmCache({digest: direct.content})
    mirror = await mirrors.start(MirrorConfig(registry=basic_registry.url), swarm)
    url = f"{mirror}/v2/{basic_image.repository}/blobs/{digest}"
    async with httpx.AsyncClient() as client:
        assert_basic_challenge(await client.get(url))
        assert_basic_challenge(await client.get(url, headers={"Authorization": basic(*WRONG)}))
        assert_basic_challenge(await client.head(url))
        assert swarm.opened == []  # refused before the swarm was asked
        allowed = await client.get(url, headers={"Authorization": basic(*ALICE)})
        again = await client.get(url, headers={"Authorization": basic(*ALICE)})
        still_refused = await client.get(url, headers={"Authorization": basic(*WRONG)})
    assert allowed.status_code == again.status_code == 200
    assert allowed.content == direct.content
    assert swarm.opened == [digest, digest]
    assert_basic_challenge(still_refused)  # alice's cached yes is hers only


async def test_authorisation_is_cached_briefly(
    mirrors: MirrorRunner, basic_registry: Registry, basic_image: PushedImage, transferer: DirectTransferer
) -> None:
    mirror = await mirrors.start(MirrorConfig(registry=basic_registry.url), transferer)
    url = f"{mirror}/v2/{basic_image.repository}/blobs/{basic_image.config_digest}"
    mark = basic_registry.log_mark()
    async with httpx.AsyncClient() as client:
        for _ in range(3):
            response = await client.head(url, headers={"Authorization": basic(*ALICE)})
            assert response.status_code == 200
            assert int(response.headers["content-length"]) > 0
    heads = [r for r in basic_registry.records_since(mark) if r.method == "HEAD"]
    assert [r.status for r in heads] == [200]  # one upstream check for three requests


async def test_token_upstream(
    mirrors: MirrorRunner,
    token_registry: Registry,
    token_server: TokenServer,
    token_images: tuple[PushedImage, PushedImage],
    transferer: DirectTransferer,
) -> None:
    private, public = token_images
    mirror = await mirrors.start(MirrorConfig(registry=token_registry.url), transferer)
    private_url = f"{mirror}/v2/{private.repository}/manifests/{private.tag}"
    async with httpx.AsyncClient() as client:
        # Anonymous clients get the upstream's Bearer challenge (docker then fetches tokens itself) ...
        ping = await client.get(f"{mirror}/v2/")
        # ... but the mirror fetches anonymous tokens itself for clients that just ask (public pulls work).
        anonymous_public = await client.get(
            f"{mirror}/v2/{public.repository}/manifests/{public.tag}", headers=headers()
        )
        anonymous_private = await client.get(private_url, headers=headers())
        wrong_login = await client.get(f"{mirror}/v2/", headers={"Authorization": basic(*WRONG)})
        bob_private = await client.get(private_url, headers=headers(BOB))
        mark = len(token_server.requests)
        alice = [await client.get(private_url, headers=headers(ALICE)) for _ in range(3)]
        alice_token_requests = token_server.requests[mark:]
        blob = await client.get(
            f"{mirror}/v2/{private.repository}/blobs/{private.layer_digests[0]}", headers=headers(ALICE)
        )
    assert ping.status_code == 401
    assert ping.headers["www-authenticate"] == f'Bearer realm="{token_server.realm}",service="{token_server.service}"'
    assert anonymous_public.status_code == 200
    assert anonymous_public.headers["docker-content-digest"] == public.manifest_digest
    assert anonymous_private.status_code == 401
    assert f'scope="repository:{private.repository}:pull"' in anonymous_private.headers["www-authenticate"]
    assert_basic_challenge(wrong_login)
    assert_basic_challenge(bob_private)
    for response in alice:
        assert response.status_code == 200
        assert response.headers["docker-content-digest"] == private.manifest_digest
    # One token for three manifest requests: tokens are cached per credentials and scope.
    assert [(r.account, r.status) for r in alice_token_requests] == [("alice", 200)]
    assert [str(s.name) for s in alice_token_requests[0].scopes] == [private.repository]
    assert blob.status_code == 200
    assert "sha256:" + hashlib.sha256(blob.content).hexdigest() == private.layer_digests[0]
    # The swarm fetches with a Bearer token, not with the client's password.
    request, _ = transferer.requests[-1]
    assert request.headers["Authorization"].startswith("Bearer ")


async def test_client_bearer_token_passes_through(
    mirrors: MirrorRunner,
    token_registry: Registry,
    token_server: TokenServer,
    token_images: tuple[PushedImage, PushedImage],
    transferer: DirectTransferer,
) -> None:
    """A client that fetched its own token from the realm (as docker does) is passed through as is."""
    private, _ = token_images
    async with httpx.AsyncClient() as client:
        token = (
            await client.get(
                token_server.realm,
                params={"service": token_server.service, "scope": f"repository:{private.repository}:pull"},
                headers={"Authorization": basic(*ALICE)},
            )
        ).json()["token"]
        mirror = await mirrors.start(MirrorConfig(registry=token_registry.url), transferer)
        url = f"{mirror}/v2/{private.repository}/manifests/{private.tag}"
        good = await client.get(url, headers=[*headers(), ("Authorization", f"Bearer {token}")])
        bad = await client.get(url, headers=[*headers(), ("Authorization", "Bearer not-a-token")])
    assert good.status_code == 200
    assert good.headers["docker-content-digest"] == private.manifest_digest
    assert bad.status_code == 401
    assert bad.headers["www-authenticate"].startswith(f'Bearer realm="{token_server.realm}"')
