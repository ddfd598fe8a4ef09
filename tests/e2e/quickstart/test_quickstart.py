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
        "quickstart: unknown argument '--bogus' (want --registry URL, --tls, status or stop)"
    ]


def test_quickstart_with_tls_downloads_and_inspects_with_the_admin_certificate(
    tmp_path: Path, process_group: ProcessGroup
) -> None:
    if missing_binaries("openssl", "grpcurl"):
        pytest.skip("openssl or grpcurl is not installed")
    home = tmp_path / "home"
    env = script_env(home, sys.executable)
    started = quickstart(env, "--tls", "--registry", "http://127.0.0.1:1")
    try:
        assert started.returncode == 0, started.stderr
        assert "Mutual TLS is on" in started.stdout
        certs = home / "certs"
        assert all(p.stat().st_mode & 0o077 == 0 for p in certs.glob("*key.pem"))
        logs = home / "logs"
        assert "(mutual TLS)" in (logs / "supernode.log").read_text()
        assert "(mutual TLS)" in (logs / "dfdaemon.log").read_text()

        (tmp_path / "origin").mkdir()
        digest = write_random_file(tmp_path / "origin" / "file.bin", 3 * MiB, seed=4)
        origin = start_origin(process_group, tmp_path / "origin")
        out = tmp_path / "file.bin"
        dfget = subprocess.run(
            [
                str(Path(sys.executable).parent / "dfget"),
                origin.url("file.bin"),
                *("-o", str(out), "--daemon", f"unix:{home / 'run' / 'dfdaemon.sock'}", "--no-back-source"),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert dfget.returncode == 0, dfget.stderr
        assert sha256_file(out) == digest

        supernode = f"127.0.0.1:{env['DANDELION_SUPERNODE_PORT']}"
        method = "dandelion.scheduler.v1.SchedulerService/ListTasks"
        admin = [
            "-cacert",
            str(certs / "ca.pem"),
            "-cert",
            str(certs / "admin.pem"),
            "-key",
            str(certs / "admin-key.pem"),
        ]
        listed = subprocess.run(["grpcurl", *admin, supernode, method], capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0 and origin.url("file.bin") in listed.stdout, listed.stderr
        plain = subprocess.run(
            ["grpcurl", "-plaintext", "-connect-timeout", "5", supernode, method], capture_output=True, text=True
        )
        assert plain.returncode != 0 and "tasks" not in plain.stdout
    finally:
        assert quickstart(env, "stop").returncode == 0
    # Started again, it reuses the certificates it made.
    ca = (home / "certs" / "ca.pem").read_bytes()
    again = quickstart(env, "--tls", "--registry", "http://127.0.0.1:1")
    try:
        assert again.returncode == 0, again.stderr
        assert (home / "certs" / "ca.pem").read_bytes() == ca
    finally:
        assert quickstart(env, "stop").returncode == 0
