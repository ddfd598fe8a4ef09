"""Local stand-ins for the base images no registry serves here: python:3.11-slim and registry:2.

python:3.11-slim: a Debian bookworm minbase rootfs with python3 and pip made by debootstrap, the
host's CA certificates added (outbound HTTPS is intercepted with them), imported with docker import.
registry:2: Debian's docker-registry (distribution 2.8) on that rootfs, built from ./registry.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from fixtures.clients import Dockerd

BASE_IMAGE = "python:3.11-slim"
REGISTRY_IMAGE = "registry:2"
REGISTRY_CONTEXT = Path(__file__).parent / "registry"
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")


def _check(result: subprocess.CompletedProcess[str], what: str) -> None:
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed: {(result.stderr or result.stdout).strip()[-2000:]}")


def _has_image(docker: Dockerd, name: str) -> bool:
    return docker.docker("image", "inspect", name).returncode == 0


def build_rootfs(root: Path) -> None:
    """debootstrap a bookworm minbase with python3 and pip, made usable as python:3.11-slim."""
    result = subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            "--include=python3,python3-venv,python3-pip,ca-certificates",
            "bookworm",
            str(root),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    _check(result, "debootstrap")
    for cert in HOST_CA_DIR.glob("*.crt"):
        shutil.copy(cert, root / "usr/local/share/ca-certificates" / cert.name)
    _check(
        subprocess.run(["chroot", str(root), "update-ca-certificates"], capture_output=True, text=True),
        "update-ca-certificates",
    )
    for name, target in (("python", "/usr/bin/python3"), ("pip", "/usr/bin/pip3")):
        link = root / "usr/local/bin" / name
        link.unlink(missing_ok=True)
        link.symlink_to(target)
    for marker in root.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
        marker.unlink()


def ensure_base_images(docker: Dockerd, workdir: Path) -> None:
    """Make python:3.11-slim and registry:2 exist in docker's image store."""
    if not _has_image(docker, BASE_IMAGE):
        root = Path(tempfile.mkdtemp(prefix="rootfs-", dir=workdir))
        build_rootfs(root)
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        imported = subprocess.run(
            ["docker", "import", "-", BASE_IMAGE],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            env=docker.env,
            timeout=600,
        )
        tar.stdout.close()
        tar.wait()
        _check(imported, "docker import")
        shutil.rmtree(root, ignore_errors=True)
    if not _has_image(docker, REGISTRY_IMAGE):
        _check(
            docker.docker("build", "--network", "host", "-q", "-t", REGISTRY_IMAGE, str(REGISTRY_CONTEXT), timeout=900),
            "registry build",
        )
