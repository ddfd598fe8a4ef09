"""The upstream side on its own (no Dandelion process): registry modes, token server, images, access log."""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fixtures.clients import dir_blob_digests, skopeo_copy_to_dir
from fixtures.images import MiB, build_and_push
from fixtures.registry import Registry
from mirror_support import PASSWORD, USER

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def _get(registry: Registry, path: str, **kwargs: object) -> httpx.Response:
    verify = ssl.create_default_context(cafile=str(registry.tls.cert_path)) if registry.tls else True
    with httpx.Client(base_url=registry.url, trust_env=False, verify=verify, timeout=30) as client:
        return client.get(path, **kwargs)  # type: ignore[arg-type]


def test_open_registry_serves_pushed_image_and_counts_blob_gets(tmp_path: Path, open_registry: Registry) -> None:
    """The pushed manifest has the reported digest and layers; the access log counts each blob GET."""
    image = build_and_push(tmp_path, open_registry.addr, "ns/self", [MiB, 2 * MiB])
    manifest = _get(open_registry, f"/v2/ns/self/manifests/{image.tag}", headers={"Accept": image.manifest_media_type})
    assert manifest.status_code == 200
    assert manifest.headers["docker-content-digest"] == image.manifest_digest
    document = json.loads(manifest.content)
    assert [layer["digest"] for layer in document["layers"]] == list(image.layer_digests)
    assert document["config"]["digest"] == image.config_digest

    mark = open_registry.log_mark()
    for _ in range(2):
        blob = _get(open_registry, f"/v2/ns/self/blobs/{image.layer_digests[0]}")
        assert "sha256:" + hashlib.sha256(blob.content).hexdigest() == image.layer_digests[0]
    ranged = _get(open_registry, f"/v2/ns/self/blobs/{image.layer_digests[1]}", headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206
    gets = open_registry.blob_gets()
    assert gets[image.layer_digests[0]] == 2 and gets[image.layer_digests[1]] == 1
    assert open_registry.blob_bytes()[image.layer_digests[1]] == 100
    assert all(r.user_agent.startswith("python-httpx") for r in open_registry.records_since(mark))


def test_basic_registry_requires_the_password(tmp_path: Path, basic_registry: Registry) -> None:
    """htpasswd mode: 401 with a Basic challenge without or with wrong credentials, 200 with them."""
    build_and_push(tmp_path, basic_registry.addr, "ns/basic", [MiB], creds=f"{USER}:{PASSWORD}")
    anonymous = _get(basic_registry, "/v2/")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].lower().startswith("basic")
    assert _get(basic_registry, "/v2/ns/basic/manifests/latest", auth=(USER, "nope")).status_code == 401
    assert _get(basic_registry, "/v2/ns/basic/manifests/latest", auth=(USER, PASSWORD)).status_code == 200
    assert PASSWORD not in basic_registry.log_path.read_text()


def test_token_registry_accepts_tokens_from_the_token_server(
    tmp_path: Path, token_registry: Registry, registry_factory: Callable[..., Registry]
) -> None:
    """Token mode: the registry verifies our RS256/x5c tokens; grants follow the account's repositories."""
    image = build_and_push(tmp_path, token_registry.addr, "ns/tok", [MiB], creds=f"{USER}:{PASSWORD}")
    challenge = _get(token_registry, "/v2/ns/tok/manifests/latest")
    assert challenge.status_code == 401
    assert challenge.headers["www-authenticate"].startswith("Bearer realm=")

    out = tmp_path / "out"
    copy = skopeo_copy_to_dir(image.reference, out, creds=f"{USER}:{PASSWORD}")
    assert copy.returncode == 0, copy.stderr
    assert dir_blob_digests(out) == set(image.blob_digests)
    assert skopeo_copy_to_dir(image.reference, tmp_path / "o2", creds=f"{USER}:wrong").returncode != 0
    assert skopeo_copy_to_dir(image.reference, tmp_path / "o3").returncode != 0

    assert token_registry.auth is not None and hasattr(token_registry.auth, "server")
    server = token_registry.auth.server
    token = server.issue(USER, [])["token"]
    assert isinstance(token, str)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "RS256" and header["x5c"]
    denied = [r for r in server.requests if r.account == "" and any(s.name == "ns/tok" for s in r.scopes)]
    assert denied and all(not r.granted for r in denied)


def test_tls_registry_serves_https_with_its_own_ca(tmp_path: Path, registry_factory: Callable[..., Registry]) -> None:
    """HTTPS mode: trusted with the fixture's certificate, refused without it."""
    registry = registry_factory(tls=True)
    build_and_push(tmp_path, registry.addr, "ns/tls", [MiB])
    assert registry.url.startswith("https://")
    assert _get(registry, "/v2/ns/tls/manifests/latest").status_code == 200
    with pytest.raises(httpx.ConnectError), httpx.Client(trust_env=False) as client:
        client.get(f"{registry.url}/v2/")
