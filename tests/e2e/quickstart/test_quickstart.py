"""scripts/quickstart.sh: one command installs and starts a single-host setup; status and stop work."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.clients import dir_blob_digests, loopback_env, missing_binaries, skopeo_copy_to_dir
from fixtures.images import build_and_push
from fixtures.origin import sha256_file, start_origin, write_random_file
from fixtures.processes import ProcessGroup, free_port
from fixtures.registry import Registry, run_registry

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "quickstart.sh"
MiB = 1 << 20

pytestmark = pytest.mark.e2e


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """An open docker-registry on loopback."""
    missing = missing_binaries("docker-registry", "skopeo")
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    with run_registry(tmp_path / "registry", None) as started:
        yield started


def quickstart(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the script with env."""
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout)


def script_env(home: Path, python: str | None) -> dict[str, str]:
    """Addresses on 127.0.0.21 with free ports, so nothing depends on the defaults being free."""
    ip = "127.0.0.21"
    env = loopback_env(
        {
            "DANDELION_HOME": str(home),
            "DANDELION_SUPERNODE_PORT": str(free_port()),
            "DANDELION_PEER_IP": ip,
            "DANDELION_PEER_PORT": str(free_port(ip)),
            "DANDELION_MIRROR": f"{ip}:{free_port(ip)}",
        }
    )
    if python is not None:
        env["DANDELION_PYTHON"] = python
    return env


def pids(home: Path) -> list[int]:
    """PIDs the script recorded."""
    return [int(p.read_text()) for p in sorted((home / "run").glob("*.pid"))]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_quickstart_starts_pulls_downloads_and_stops(
    tmp_path: Path, registry: Registry, process_group: ProcessGroup
) -> None:
    home = tmp_path / "home"
    env = script_env(home, sys.executable)
    started = quickstart(env, "--registry", registry.url)
    try:
        assert started.returncode == 0, started.stderr
        assert "Dandelion is running" in started.stdout
        recorded = pids(home)
        assert len(recorded) == 2 and all(alive(pid) for pid in recorded)
        assert quickstart(env, "--registry", registry.url).returncode != 0  # already running: refused

        status = quickstart(env, "status")
        assert status.stdout.count(": running") == 2

        image = build_and_push(tmp_path, registry.addr, "ns/quick", [2 * MiB, MiB])
        copy = skopeo_copy_to_dir(image.reference_via(env["DANDELION_MIRROR"]), tmp_path / "pulled")
        assert copy.returncode == 0, copy.stderr + (home / "logs" / "dfdaemon.log").read_text()[-3000:]
        assert dir_blob_digests(tmp_path / "pulled") == set(image.blob_digests)

        (tmp_path / "origin").mkdir()
        digest = write_random_file(tmp_path / "origin" / "file.bin", 5 * MiB, seed=3)
        origin = start_origin(process_group, tmp_path / "origin")
        out = tmp_path / "file.bin"
        dfget = subprocess.run(
            [
                str(Path(sys.executable).parent / "dfget"),
                origin.url("file.bin"),
                *("-o", str(out), "--no-back-source"),  # no --daemon: dfget finds the quick start's socket
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert dfget.returncode == 0, dfget.stderr
        assert sha256_file(out) == digest
    finally:
        stopped = quickstart(env, "stop")
    assert stopped.returncode == 0
    assert stopped.stdout.count("stopped") == 2
    assert not any(alive(pid) for pid in recorded)
    assert pids(home) == []
    assert "not running" in quickstart(env, "status").stdout


def test_quickstart_installs_into_a_virtualenv(tmp_path: Path, registry: Registry) -> None:
    home = tmp_path / "home"
    env = script_env(home, None)
    started = quickstart(env, "--registry", registry.url, timeout=600)
    try:
        assert started.returncode == 0, started.stderr
        assert (home / "venv" / "bin" / "dfdaemon").is_file()
        assert all(alive(pid) for pid in pids(home))
    finally:
        assert quickstart(env, "stop").returncode == 0


def test_quickstart_rejects_bad_arguments(tmp_path: Path) -> None:
    env = script_env(tmp_path / "home", sys.executable)
    bad = quickstart(env, "--bogus")
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines() == [
        "quickstart: unknown argument '--bogus' (want --registry URL, status or stop)"
    ]
