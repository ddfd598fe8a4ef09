"""Tag lists and the catalog through the mirror: passed through with the client's credentials, Link paging kept.

The upstream is Debian's docker-registry (distribution 2.8): it pages /v2/_catalog with n/last and a Link header,
but answers /v2/NAME/tags/list whole whatever n and last say, so tag paging is checked as "n and last reach
the upstream and its answer comes back unchanged" and Link-following is checked on the catalog.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fixtures.clients import loopback_env
from fixtures.images import build_oci_image, push_image
from fixtures.registry import Registry, TokenAuth
from mirror_support import PASSWORD, USER
from mirror_swarm import MirrorNode, MirrorSwarm

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SwarmFactory = Callable[..., MirrorSwarm]
RegistryFactory = Callable[..., Registry]
GOOD_AUTH = (USER, PASSWORD)
BAD_AUTH = (USER, PASSWORD + "-wrong")
TAGS = ("v1", "v2", "latest", "a")
MAX_PAGES = 20


def push_tags(
    workdir: Path, registry: Registry, repository: str, tags: tuple[str, ...], creds: str | None = None
) -> None:
    """Push one small image to registry/repository under every tag."""
    image = build_oci_image(workdir / f"oci-{repository.replace('/', '_')}", [1024], tags[0])
    for tag in tags:
        push_image(image, registry.addr, repository, tag, creds=creds)


def upstream_get(registry: Registry, path: str, auth: tuple[str, str] | None = None) -> httpx.Response:
    """GET path from the registry itself (Basic auth only: for the open and htpasswd registries)."""
    with httpx.Client(base_url=registry.url, trust_env=False, timeout=60, auth=auth) as client:
        return client.get(path)


def error_code(response: httpx.Response) -> str:
    """The registry error code of an error answer (fails the test if the body is not the JSON envelope)."""
    assert response.headers["content-type"].startswith("application/json"), response.headers
    return str(response.json()["errors"][0]["code"])


def skopeo_list_tags(reference: str, creds: str | None = None) -> subprocess.CompletedProcess[str]:
    """skopeo list-tags docker://reference over plain HTTP; creds is "user:password" or None (anonymous)."""
    argv = ["skopeo", "list-tags", "--tls-verify=false"]
    argv += ["--creds", creds] if creds is not None else ["--no-creds"]
    return subprocess.run(
        [*argv, f"docker://{reference}"], capture_output=True, text=True, timeout=120, env=loopback_env()
    )


def follow_catalog(node: MirrorNode, first: str) -> tuple[list[str], list[str]]:
    """GET first and every page its Link headers lead to through the mirror: (repositories, links followed)."""
    repositories: list[str] = []
    links: list[str] = []
    target: str | None = first
    with node.client() as client:
        while target is not None:
            assert len(links) < MAX_PAGES, links
            response = client.get(target)
            assert response.status_code == 200, (target, response.text)
            page = response.json()["repositories"]
            assert len(page) <= 1, (target, page)
            repositories += page
            link = response.headers.get("link")
            target = None
            if link is not None:
                assert link.startswith("</v2/_catalog?") and link.endswith('>; rel="next"'), link
                target = link[1 : link.index(">")]
                links.append(target)
    return repositories, links


def test_tag_list_through_the_mirror_is_the_upstream_list(
    tmp_path: Path, open_registry: Registry, swarm_factory: SwarmFactory
) -> None:
    """GET and HEAD answer what the registry answers; n and last reach it; unknown names stay 404; skopeo works."""
    push_tags(tmp_path, open_registry, "ns/img", TAGS)
    node = swarm_factory(open_registry).nodes[0]
    direct = upstream_get(open_registry, "/v2/ns/img/tags/list")
    assert direct.status_code == 200 and sorted(direct.json()["tags"]) == sorted(TAGS)

    with node.client() as client:
        listed = client.get("/v2/ns/img/tags/list")
        assert listed.status_code == 200, listed.text
        assert listed.content == direct.content
        assert listed.headers["content-type"] == direct.headers["content-type"]
        assert listed.headers["docker-distribution-api-version"] == "registry/2.0"
        head = client.head("/v2/ns/img/tags/list")
        assert head.status_code == 200
        assert head.content == b"" and int(head.headers["content-length"]) == len(direct.content)

        mark = open_registry.log_mark()
        paged = client.get("/v2/ns/img/tags/list", params={"n": "1", "last": "latest"})
        assert paged.status_code == 200
        assert paged.content == upstream_get(open_registry, "/v2/ns/img/tags/list?n=1&last=latest").content
        forwarded = [r.target for r in open_registry.records_since(mark) if "/tags/list" in r.target]
        assert forwarded[0] == "/v2/ns/img/tags/list?n=1&last=latest", forwarded

        unknown = client.get("/v2/ns/nothing-here/tags/list")
        assert unknown.status_code == 404 and error_code(unknown) == "NAME_UNKNOWN"

    result = skopeo_list_tags(f"{node.mirror_addr}/ns/img")
    assert result.returncode == 0, result.stderr
    assert sorted(json.loads(result.stdout)["Tags"]) == sorted(TAGS)
    assert any(r.target == "/v2/ns/img/tags/list" for r in open_registry.access_log())


def test_catalog_pages_follow_the_link_through_the_mirror(
    tmp_path: Path, registry_factory: RegistryFactory, swarm_factory: SwarmFactory
) -> None:
    """n=1 pages of the catalog, following Link, give every repository; ?ns= picks the upstream and stays in Link."""
    default, other = registry_factory(), registry_factory()
    for repository in ("ns/img", "ns/other", "solo"):
        push_tags(tmp_path / "default", default, repository, ("v1",))
    for repository in ("team/app", "team/db"):
        push_tags(tmp_path / "other", other, repository, ("v1", "v2"))
    node = swarm_factory(default, extra_args=("--allow-registry", other.addr)).nodes[0]
    expected = upstream_get(default, "/v2/_catalog").json()["repositories"]
    assert sorted(expected) == ["ns/img", "ns/other", "solo"]

    with node.client() as client:
        whole = client.get("/v2/_catalog")
        assert whole.status_code == 200 and whole.json()["repositories"] == expected
        assert client.head("/v2/_catalog").status_code == 200

    repositories, links = follow_catalog(node, "/v2/_catalog?n=1")
    assert repositories == expected
    assert len(links) >= 2

    repositories, links = follow_catalog(node, f"/v2/_catalog?n=1&ns={other.addr}")
    assert repositories == upstream_get(other, "/v2/_catalog").json()["repositories"]
    assert sorted(repositories) == ["team/app", "team/db"]
    assert links and all(parse_qs(urlsplit(link).query)["ns"] == [other.addr] for link in links), links

    with node.client() as client:
        tags = client.get("/v2/team/app/tags/list", params={"ns": other.addr})
        assert tags.status_code == 200 and sorted(tags.json()["tags"]) == ["v1", "v2"]


def test_private_registry_listings_need_the_clients_credentials(
    tmp_path: Path, basic_registry: Registry, swarm_factory: SwarmFactory
) -> None:
    """htpasswd upstream: no or wrong credentials get 401 with a registry error; the right ones get the lists."""
    push_tags(tmp_path, basic_registry, "ns/secret", TAGS, creds=f"{USER}:{PASSWORD}")
    node = swarm_factory(basic_registry).nodes[0]

    with node.client() as client:
        for path in ("/v2/ns/secret/tags/list", "/v2/_catalog"):
            for auth in (None, BAD_AUTH):
                refused = client.get(path, auth=auth)
                assert refused.status_code == 401, (path, auth is not None, refused.text)
                assert error_code(refused) == "UNAUTHORIZED"
                assert refused.headers["www-authenticate"].lower().startswith("basic ")
                assert PASSWORD not in refused.text
            assert client.head(path).status_code == 401

    with node.client(auth=GOOD_AUTH) as client:
        tags = client.get("/v2/ns/secret/tags/list")
        assert tags.status_code == 200, tags.text
        assert tags.content == upstream_get(basic_registry, "/v2/ns/secret/tags/list", GOOD_AUTH).content
        catalog = client.get("/v2/_catalog")
        assert catalog.status_code == 200 and catalog.json()["repositories"] == ["ns/secret"]

    anonymous = skopeo_list_tags(f"{node.mirror_addr}/ns/secret")
    assert anonymous.returncode != 0
    logged_in = skopeo_list_tags(f"{node.mirror_addr}/ns/secret", creds=f"{USER}:{PASSWORD}")
    assert logged_in.returncode == 0, logged_in.stderr
    assert sorted(json.loads(logged_in.stdout)["Tags"]) == sorted(TAGS)
    assert PASSWORD not in node.proc.tail(500)


def test_token_registry_listings_use_tokens_for_the_client(
    tmp_path: Path, token_registry: Registry, swarm_factory: SwarmFactory
) -> None:
    """Token upstream: tags with the pull scope for the client's account; a catalog it refuses (like Docker Hub's)
    comes back as a 401 registry error."""
    push_tags(tmp_path, token_registry, "ns/tokened", TAGS, creds=f"{USER}:{PASSWORD}")
    assert isinstance(token_registry.auth, TokenAuth)
    server = token_registry.auth.server
    node = swarm_factory(token_registry).nodes[0]
    before = len(server.requests)

    with node.client() as client:
        anonymous = client.get("/v2/ns/tokened/tags/list")
        assert anonymous.status_code == 401 and error_code(anonymous) == "UNAUTHORIZED"
        assert anonymous.headers["www-authenticate"].lower().startswith("bearer ")

    with node.client(auth=GOOD_AUTH) as client:
        tags = client.get("/v2/ns/tokened/tags/list")
        assert tags.status_code == 200, tags.text
        assert tags.json()["name"] == "ns/tokened"
        assert sorted(tags.json()["tags"]) == sorted(TAGS)
        catalog = client.get("/v2/_catalog")
        assert catalog.status_code == 401 and error_code(catalog) == "UNAUTHORIZED"

    issued = [
        (r.account, r.status, [f"{s.type}:{s.name}:{','.join(s.actions)}" for s in r.scopes])
        for r in server.requests[before:]
    ]
    assert (USER, 200, ["repository:ns/tokened:pull"]) in issued, issued
    assert (USER, 200, ["registry:catalog:*"]) in issued, issued

    result = skopeo_list_tags(f"{node.mirror_addr}/ns/tokened", creds=f"{USER}:{PASSWORD}")
    assert result.returncode == 0, result.stderr
    assert sorted(json.loads(result.stdout)["Tags"]) == sorted(TAGS)


def test_bad_listing_requests_are_refused_before_the_upstream(
    tmp_path: Path, open_registry: Registry, swarm_factory: SwarmFactory
) -> None:
    """A bad n is 400 PAGINATION_NUMBER_INVALID, a bad name 400 NAME_INVALID, writes 405; none goes upstream."""
    push_tags(tmp_path, open_registry, "ns/img", ("v1",))
    node = swarm_factory(open_registry).nodes[0]
    mark = open_registry.log_mark()

    with node.client() as client:
        for path in ("/v2/ns/img/tags/list", "/v2/_catalog"):
            for n in ("-1", "abc", "1.5", " 1", "1e3", "9" * 40):
                response = client.get(path, params={"n": n})
                assert response.status_code == 400, (path, n, response.text)
                assert error_code(response) == "PAGINATION_NUMBER_INVALID"
            assert client.head(path, params={"n": "x"}).status_code == 400
            for method in ("POST", "PUT", "PATCH", "DELETE"):
                response = client.request(method, path, content=b"{}")
                assert response.status_code == 405, (method, path)
                assert error_code(response) == "UNSUPPORTED"
        for bad_name in ("NS/Img", "-ns/img", "ns/img_", "ns/Img"):
            response = client.get(f"/v2/{bad_name}/tags/list")
            assert response.status_code == 400, (bad_name, response.text)
            assert error_code(response) == "NAME_INVALID"
    assert [r.target for r in open_registry.records_since(mark)] == []

    with node.client() as client:
        assert client.get("/v2/ns/img/tags/list", params={"n": "0"}).status_code == 200
    assert [r.target for r in open_registry.records_since(mark)] == ["/v2/ns/img/tags/list?n=0"]
