"""Fixtures for the registry mirror end-to-end tests: upstream registries, swarms, private clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from fixtures.clients import Dockerd, run_dockerd
from fixtures.registry import BasicAuth, Registry, RegistryAuth, TokenAuth, run_registry
from fixtures.token_server import run_token_server
from mirror_support import PASSWORD, USER, require
from mirror_swarm import MirrorSwarm, run_mirror_swarm


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker for the long tests (deselect with -m 'not slow')."""
    config.addinivalue_line("markers", "slow: long end-to-end tests (large layers)")


@pytest.fixture
def registry_factory(tmp_path: Path) -> Iterator[Callable[..., Registry]]:
    """Start docker-registry instances (open, Basic or token auth; HTTP or HTTPS); all stop after the test."""
    require("docker-registry", "skopeo")
    with ExitStack() as stack:
        count = 0

        def start(auth: RegistryAuth = None, tls: bool = False) -> Registry:
            nonlocal count
            count += 1
            return stack.enter_context(run_registry(tmp_path / f"registry-{count}", auth, tls=tls))

        yield start


@pytest.fixture
def open_registry(registry_factory: Callable[..., Registry]) -> Registry:
    """An upstream registry without auth."""
    return registry_factory()


@pytest.fixture
def basic_registry(registry_factory: Callable[..., Registry]) -> Registry:
    """An upstream registry with htpasswd Basic auth for USER/PASSWORD."""
    require("htpasswd")
    return registry_factory(BasicAuth({USER: PASSWORD}))


@pytest.fixture
def token_registry(tmp_path: Path, registry_factory: Callable[..., Registry]) -> Iterator[Registry]:
    """An upstream registry with token auth: USER may pull and push ns/*."""
    require("openssl")
    grants = {USER: {"ns/*": frozenset({"pull", "push"})}}
    with run_token_server(tmp_path / "token", {USER: PASSWORD}, grants) as server:
        yield registry_factory(TokenAuth(server))


@pytest.fixture
def swarm_factory(tmp_path: Path) -> Iterator[Callable[..., MirrorSwarm]]:
    """Start a supernode with dfdaemons mirroring a registry; all stop at the end of the test."""
    with ExitStack() as stack:
        count = 0

        def start(
            registry: Registry,
            nodes: int = 1,
            extra_args: tuple[str, ...] = (),
            supernode_args: tuple[str, ...] = (),
        ) -> MirrorSwarm:
            nonlocal count
            count += 1
            swarm = run_mirror_swarm(tmp_path / f"swarm-{count}", registry.url, nodes, extra_args, supernode_args)
            return stack.enter_context(swarm)

        yield start


@pytest.fixture
def dockerd_factory(tmp_path: Path) -> Iterator[Callable[..., Dockerd]]:
    """Start private dockerd instances (optionally with registry-mirrors); all stop at the end of the test."""
    require("dockerd", "docker")
    with ExitStack() as stack:
        count = 0

        def start(registry_mirrors: tuple[str, ...] = ()) -> Dockerd:
            nonlocal count
            count += 1
            return stack.enter_context(run_dockerd(tmp_path / f"docker-{count}", registry_mirrors))

        yield start
