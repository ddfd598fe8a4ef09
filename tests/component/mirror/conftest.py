"""Real upstream registries (docker-registry: open, htpasswd, token) with a pushed test image, and mirrors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fixtures.images import PushedImage, build_and_push
from fixtures.registry import BasicAuth, Registry, TokenAuth, run_registry
from fixtures.token_server import TokenServer, run_token_server
from mirror_helpers import DirectTransferer, MirrorRunner

MiB = 1024 * 1024
LAYER_SIZES = (300_000, 2 * MiB + 12_345)
USERS = {"alice": "wonder-land-7", "bob": "builder-9"}


@pytest.fixture(scope="module")
def open_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """An open (no auth) registry."""
    with run_registry(tmp_path_factory.mktemp("open-registry")) as registry:
        yield registry


@pytest.fixture(scope="module")
def open_image(open_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> PushedImage:
    """A two-layer Docker schema 2 image in the open registry."""
    return build_and_push(tmp_path_factory.mktemp("open-image"), open_registry.addr, "dandelion/app", LAYER_SIZES)


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry with htpasswd Basic auth (users alice and bob)."""
    with run_registry(tmp_path_factory.mktemp("basic-registry"), BasicAuth(USERS)) as registry:
        yield registry


@pytest.fixture(scope="module")
def basic_image(basic_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> PushedImage:
    """A private image behind Basic auth."""
    return build_and_push(
        tmp_path_factory.mktemp("basic-image"),
        basic_registry.addr,
        "private/app",
        LAYER_SIZES,
        creds=f"alice:{USERS['alice']}",
    )


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    """A token server: alice may do anything, bob and anonymous may pull public/* only."""
    grants = {
        "alice": {"*": frozenset({"*"})},
        "bob": {"public/*": frozenset({"pull"})},
        "": {"public/*": frozenset({"pull"})},
    }
    with run_token_server(tmp_path_factory.mktemp("token-server"), USERS, grants) as server:
        yield server


@pytest.fixture(scope="module")
def token_registry(token_server: TokenServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry with token auth delegated to token_server."""
    with run_registry(tmp_path_factory.mktemp("token-registry"), TokenAuth(token_server)) as registry:
        yield registry


@pytest.fixture(scope="module")
def token_images(token_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> tuple[PushedImage, PushedImage]:
    """A private image and a public (anonymous pull) image in the token registry."""
    workdir = tmp_path_factory.mktemp("token-images")
    creds = f"alice:{USERS['alice']}"
    private = build_and_push(workdir / "private", token_registry.addr, "private/app", LAYER_SIZES[:1], creds=creds)
    public = build_and_push(workdir / "public", token_registry.addr, "public/app", LAYER_SIZES[:1], creds=creds)
    return private, public


@pytest.fixture
async def mirrors() -> AsyncIterator[MirrorRunner]:
    """Start mirrors in this test's event loop; all stopped at teardown."""
    runner = MirrorRunner()
    try:
        yield runner
    finally:
        await runner.stop_all()


@pytest.fixture
async def transferer() -> AsyncIterator[DirectTransferer]:
    """A transferer fetching blobs from the upstream directly."""
    direct = DirectTransferer()
    try:
        yield direct
    finally:
        await direct.aclose()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A scratch directory."""
    return tmp_path
