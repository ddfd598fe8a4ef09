"""One dfdaemon, several upstreams: namespaces mapped to other registries, pulled by real clients configured by
`dfdaemon client-config`.

Three docker-registry instances play the parts: the dfdaemon's default registry (a decoy holding another image under
the same names), a "Hub proxy" that docker.io is mapped to, and an HTTPS "Harbor" with its own CA that ghcr.io is
mapped to (trusted with --registry-ca ghcr.io=FILE only). containerd (`ctr`, hosts.toml written by client-config),
skopeo (registries.conf written by client-config for podman) and dockerd (its daemon.json) pull docker.io/... and
ghcr.io/... names; the digests they end up with and the registries' access logs show which registry served every byte.

The clients' own fallback would go to the real docker.io and ghcr.io: their proxy is set to a dead loopback port, so
nothing leaves loopback and a pass means the mirror served the pull.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
from fixtures.clients import dir_blob_digests, loopback_env, run_containerd, run_dockerd
from fixtures.images import MiB, PushedImage, build_and_push
from fixtures.processes import console_script, free_port
from fixtures.registry import Registry
from mirror_support import assert_layers_fetched_once, require
from mirror_swarm import MirrorSwarm

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SwarmFactory = Callable[..., MirrorSwarm]


def client_env() -> dict[str, str]:
    """The clients' environment: every proxied request (anything beyond loopback) fails at once."""
    dead = f"http://127.0.0.1:{free_port('127.0.0.1')}"
    return loopback_env({"HTTP_PROXY": dead, "HTTPS_PROXY": dead, "NO_PROXY": "127.0.0.0/8"})


def client_config(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run the real `dfdaemon client-config` command."""
    return subprocess.run(
        [console_script("dfdaemon"), "client-config", *argv], capture_output=True, text=True, timeout=60
    )


class Upstreams(NamedTuple):
    """The three registries, the images pushed to the mapped ones, and where the decoy's log stood after its pushes."""

    decoy: Registry
    hub: Registry
    harbor: Registry
    images: dict[str, PushedImage]
    decoy_mark: int

    def assert_decoy_untouched(self) -> None:
        """The default registry, which holds other images under the same names, was asked for none of them after its
        pushes (a client's `GET /v2/` ping names no registry, so the mirror asks the default)."""
        asked = [r.target for r in self.decoy.records_since(self.decoy_mark)]
        assert [target for target in asked if target != "/v2/"] == [], asked


@pytest.fixture
def upstreams(tmp_path: Path, registry_factory: Callable[..., Registry]) -> Upstreams:
    """The decoy default, the docker.io target and the ghcr.io target (HTTPS), each with its own images."""
    require("openssl")
    decoy, hub, harbor = registry_factory(), registry_factory(), registry_factory(tls=True)
    build_and_push(tmp_path / "d1", decoy.addr, "library/dfimg", [MiB], tag="1")
    build_and_push(tmp_path / "d2", decoy.addr, "org/tool", [MiB], tag="1")
    images = {
        "hub": build_and_push(tmp_path / "h", hub.addr, "library/dfimg", [2 * MiB, MiB], tag="1"),
        "ghcr": build_and_push(tmp_path / "g", harbor.addr, "org/tool", [2 * MiB, MiB], tag="1"),
    }
    return Upstreams(decoy, hub, harbor, images, decoy.log_mark())


def start_node(
    tmp_path: Path,
    swarm_factory: SwarmFactory,
    decoy: Registry,
    hub: Registry,
    harbor: Registry,
    extra_args: tuple[str, ...] = (),
) -> tuple[MirrorSwarm, Path]:
    """A dfdaemon whose config file maps docker.io and ghcr.io (a TOML table) with a CA for ghcr.io only."""
    assert harbor.tls is not None
    config = tmp_path / "dfdaemon.toml"
    config.write_text(
        f'[registry-map]\n"docker.io" = "{hub.url}"\n"ghcr.io" = "{harbor.url}"\n'
        f'[registry-ca]\n"ghcr.io" = "{harbor.tls.cert_path}"\n'
    )
    # The supernode's seed fetches the layers from the upstreams too: it trusts Harbor's CA as an origin CA.
    swarm = swarm_factory(
        decoy,
        extra_args=("--config", str(config), *extra_args),
        supernode_args=("--origin-ca", str(harbor.tls.cert_path)),
    )
    return swarm, config


def test_containerd_pulls_mapped_namespaces_with_hosts_toml_from_client_config(
    tmp_path: Path,
    upstreams: Upstreams,
    swarm_factory: SwarmFactory,
) -> None:
    """docker.io/library/dfimg comes from the Hub proxy and ghcr.io/org/tool from Harbor (HTTPS, its own CA),
    through one mirror; the default registry's images of the same names are never asked for."""
    require("containerd", "ctr")
    decoy, hub, harbor, images, _ = upstreams
    swarm, config = start_node(tmp_path, swarm_factory, decoy, hub, harbor)
    node = swarm.nodes[0]
    hosts = tmp_path / "certs.d"
    written = client_config(
        "--runtime", "containerd", "--config", str(config), "--mirror", node.mirror_addr, "--write", str(hosts)
    )
    assert written.returncode == 0, written.stderr
    assert sorted(p.parent.name for p in hosts.glob("*/hosts.toml")) == ["docker.io", "ghcr.io"]

    with run_containerd(tmp_path / "containerd") as containerd:
        for reference, image in (("docker.io/library/dfimg:1", images["hub"]), ("ghcr.io/org/tool:1", images["ghcr"])):
            ctr = ["ctr", "--address", str(containerd.socket), "--namespace", containerd.namespace]
            pull = subprocess.run(
                [*ctr, "image", "pull", "--hosts-dir", str(hosts), reference],
                capture_output=True,
                text=True,
                env=client_env(),
                timeout=180,
            )
            assert pull.returncode == 0, f"{reference}: {pull.stderr}\n{swarm.logs()}"
            assert containerd.image_target_digest(reference) == image.manifest_digest
            assert set(image.layer_digests) <= containerd.content_digests()
    assert_layers_fetched_once(hub, images["hub"])
    assert_layers_fetched_once(harbor, images["ghcr"])
    upstreams.assert_decoy_untouched()
    log = node.proc.tail(400)
    assert f"docker.io -> {hub.url}" in log and f"ghcr.io -> {harbor.url}" in log


def test_skopeo_pulls_mapped_namespaces_with_the_podman_registries_conf(
    tmp_path: Path,
    upstreams: Upstreams,
    swarm_factory: SwarmFactory,
) -> None:
    """podman's registries.conf (read by skopeo, the same containers/image code) mirrors each mapped name at
    MIRROR/NAME: podman names no registry to a mirror, so the name travels in the path."""
    require("skopeo")
    decoy, hub, harbor, images, _ = upstreams
    swarm, config = start_node(tmp_path, swarm_factory, decoy, hub, harbor)
    node = swarm.nodes[0]
    written = client_config(
        "--runtime", "podman", "--config", str(config), "--mirror", node.mirror_addr, "--write", str(tmp_path)
    )
    assert written.returncode == 0, written.stderr
    conf = (tmp_path / "registries.conf").read_text()
    assert f'location = "{node.mirror_addr}/docker.io"' in conf  # mapped names travel in the path

    for reference, image in (("docker.io/library/dfimg:1", images["hub"]), ("ghcr.io/org/tool:1", images["ghcr"])):
        out = tmp_path / reference.replace("/", "_")
        argv = ["skopeo", "--registries-conf", str(tmp_path / "registries.conf"), "copy", "--quiet"]
        copy = subprocess.run(
            [*argv, "--src-no-creds", f"docker://{reference}", f"dir:{out}"],
            capture_output=True,
            text=True,
            env=client_env(),
            timeout=180,
        )
        assert copy.returncode == 0, f"{reference}: {copy.stderr}\n{swarm.logs()}"
        assert {*image.layer_digests, image.config_digest} <= dir_blob_digests(out)
    assert_layers_fetched_once(hub, images["hub"])
    assert_layers_fetched_once(harbor, images["ghcr"])
    upstreams.assert_decoy_untouched()


def test_docker_pulls_hub_names_from_the_mapped_docker_io_and_others_by_mirror_address(
    tmp_path: Path,
    upstreams: Upstreams,
    swarm_factory: SwarmFactory,
) -> None:
    """With --registry left at Docker Hub and docker.io mapped, dockerd's registry-mirrors (daemon.json from
    client-config) brings `docker pull dfimg:1` from the Hub proxy; `docker pull MIRROR/ghcr.io/org/tool:1` comes
    from the registry ghcr.io is mapped to."""
    require("dockerd", "docker")
    decoy, hub, harbor, images, _ = upstreams
    hub_default = ("--registry", "https://registry-1.docker.io")  # after the fixture's --registry: it wins
    swarm, config = start_node(tmp_path, swarm_factory, decoy, hub, harbor, hub_default)
    node = swarm.nodes[0]
    written = client_config("--runtime", "docker", "--config", str(config), "--mirror", node.mirror_addr)
    assert written.returncode == 0, written.stderr
    assert f"pull ghcr.io images as {node.mirror_addr}/ghcr.io/REPO:TAG" in written.stderr

    with run_dockerd(tmp_path / "docker", daemon_json=written.stdout, extra_env=client_env()) as docker:
        by_mirror = f"{node.mirror_addr}/ghcr.io/org/tool:1"
        for reference, image in (("dfimg:1", images["hub"]), (by_mirror, images["ghcr"])):
            pull = docker.pull(reference, timeout=180)
            assert pull.returncode == 0, f"{reference}: {pull.stderr}\n{swarm.logs()}"
            assert docker.image_id(reference) == image.config_digest
    assert_layers_fetched_once(hub, images["hub"])
    assert_layers_fetched_once(harbor, images["ghcr"])
    upstreams.assert_decoy_untouched()
