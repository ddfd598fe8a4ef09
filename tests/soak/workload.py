"""The soak's clients: real dfget runs and skopeo/docker pulls through the mirrors, each with a deadline.

Every run ends as one Outcome. A run still going at its deadline is killed from outside and recorded as
"stalled" (dfget gets --timeout as well when it has one). Outputs are checked byte for byte against the origin.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fixtures.clients import Dockerd, loopback_env
from fixtures.images import PushedImage
from fixtures.processes import console_script

from .cluster import Service

OK, FAILED, STALLED, CORRUPT, UNCLEAR = "ok", "failed", "stalled", "corrupt", "unclear"
# What skopeo and docker say when the bytes a registry (here: the mirror) sent do not match their digest:
# the client refused them, but corrupt bytes did reach it.
DIGEST_MISMATCH = ("digest did not match", "verification failed", "digest mismatch")
VIOLATIONS = frozenset({STALLED, CORRUPT, UNCLEAR})


@dataclass(frozen=True)
class OriginFile:
    """A file the origin serves."""

    path: str  # URL path, e.g. /f3.bin
    size: int
    sha256: str


@dataclass
class Outcome:
    """How one client run ended."""

    client: str  # dfget | skopeo | docker | cut_client
    target: str  # URL path or image reference
    via: str  # the role whose daemon/mirror served it
    phase: str  # warmup | faults | final
    started: float  # seconds since the run began
    duration: float
    status: str  # ok | failed | stalled | corrupt | unclear
    detail: str = ""

    def as_json(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return dict(self.__dict__)


@dataclass
class Ledger:
    """Every outcome so far, shared by the client threads."""

    t0: float = field(default_factory=time.monotonic)
    outcomes: list[Outcome] = field(default_factory=list)
    linked_outputs: list[tuple[Path, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> float:
        """Seconds since the run began."""
        return time.monotonic() - self.t0

    def add(self, outcome: Outcome) -> None:
        """Record an outcome."""
        with self.lock:
            self.outcomes.append(outcome)


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as src:
        while block := src.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def clear_error(stderr: str, prefix: str) -> str | None:
    """The one-line error a failed client printed, or None when it printed none or a traceback/panic."""
    if "Traceback (most recent call last)" in stderr or "panic:" in stderr or "goroutine " in stderr:
        return None
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return None
    last = lines[-1]
    return last if last.startswith(prefix) or not prefix else None


def client_failure(stderr: str) -> tuple[str, str]:
    """How a failed skopeo/docker run is classed: corrupt bytes received, a clear error, or an unclear one."""
    if any(words in stderr.lower() for words in DIGEST_MISMATCH):
        return CORRUPT, "the mirror sent bytes that do not match their digest: " + stderr.strip()[-400:]
    message = clear_error(stderr, "")
    return (FAILED, message[-300:]) if message else (UNCLEAR, stderr.strip()[-500:])


def run_with_deadline(
    argv: Sequence[str], deadline: float, env: dict[str, str] | None = None
) -> tuple[int | None, str]:
    """Run argv; (exit status, stderr), status None when it was still running at the deadline and got killed."""
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env or loopback_env(),
        start_new_session=True,
    )
    try:
        _, err = proc.communicate(timeout=deadline)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        return None, err
    return proc.returncode, err


_DFGET_HAS_TIMEOUT: bool | None = None


def dfget_has_timeout() -> bool:
    """True when this dfget knows --timeout (then the deadline is passed to it as well)."""
    global _DFGET_HAS_TIMEOUT
    if _DFGET_HAS_TIMEOUT is None:
        result = subprocess.run([console_script("dfget"), "--help"], capture_output=True, text=True, timeout=60)
        _DFGET_HAS_TIMEOUT = "--timeout" in result.stdout
    return _DFGET_HAS_TIMEOUT


def run_dfget(
    ledger: Ledger, origin_url: str, item: OriginFile, peer: Service, out_dir: Path, phase: str, deadline: float
) -> Outcome:
    """dfget one origin file through peer's dfdaemon into out_dir/<name>; check bytes or error; record it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / item.path.lstrip("/")
    argv = [console_script("dfget"), origin_url + item.path, "-o", str(output), "--quiet"]
    argv += ["--daemon", f"unix:{peer.socket}"]
    if dfget_has_timeout():
        argv += ["--timeout", f"{max(1.0, deadline - 5):.0f}s"]
    started = ledger.now()
    status_code, err = run_with_deadline(argv, deadline)
    duration = ledger.now() - started
    leftovers = sorted(p.name for p in out_dir.iterdir() if p != output)
    if status_code is None:
        status, detail = STALLED, f"no result after {deadline:.0f}s (killed); stderr: {err.strip()[-300:]}"
        if output.exists() and sha256_of(output) != item.sha256:
            status, detail = CORRUPT, f"killed at the deadline with a wrong {output.name} in place"
    elif status_code == 0:
        if not output.exists():
            status, detail = CORRUPT, "exit 0 but no output file"
        elif (got := sha256_of(output)) != item.sha256:
            status, detail = CORRUPT, f"exit 0 but sha256 {got} != {item.sha256}"
        elif leftovers:
            status, detail = CORRUPT, f"temp files left beside the output: {leftovers}"
        else:
            status, detail = OK, ""
    else:
        message = clear_error(err, "dfget:")
        if output.exists():
            status, detail = CORRUPT, f"exit {status_code} yet {output.name} is in place; stderr: {err.strip()[-300:]}"
        elif leftovers:
            status, detail = CORRUPT, f"exit {status_code} left partial files {leftovers}"
        elif message is None:
            status, detail = UNCLEAR, f"exit {status_code} without a one-line error: {err.strip()[-500:]}"
        else:
            status, detail = FAILED, message
    outcome = Outcome("dfget", item.path, peer.role, phase, started, duration, status, detail)
    ledger.add(outcome)
    keep_or_remove(ledger, output, item.sha256 if status == OK else None, out_dir)
    return outcome


def keep_or_remove(ledger: Ledger, output: Path, sha: str | None, out_dir: Path) -> None:
    """Keep a correct output that is a hard link to a daemon's cache (re-checked at the end); remove the rest."""
    if sha is not None and output.exists() and output.stat().st_nlink > 1:
        with ledger.lock:
            ledger.linked_outputs.append((output, sha))
        return
    shutil.rmtree(out_dir, ignore_errors=True)


def run_skopeo(
    ledger: Ledger, image: PushedImage, node: Service, out_dir: Path, phase: str, deadline: float
) -> Outcome:
    """skopeo copy the image through node's mirror into a dir: layout; every blob must hash to its digest."""
    mirror = node.port("http")
    reference = image.reference_via(f"{mirror.host}:{mirror.port}")
    shutil.rmtree(out_dir, ignore_errors=True)
    argv = ["skopeo", "copy", "--quiet", "--retry-times", "0", "--src-tls-verify=false", "--src-no-creds"]
    argv += [f"docker://{reference}", f"dir:{out_dir}"]
    started = ledger.now()
    status_code, err = run_with_deadline(argv, deadline)
    duration = ledger.now() - started
    if status_code is None:
        status, detail = STALLED, f"no result after {deadline:.0f}s (killed)"
    elif status_code == 0:
        problem = check_dir_layout(out_dir, image)
        status, detail = (CORRUPT, problem) if problem else (OK, "")
    else:
        status, detail = client_failure(err)
    outcome = Outcome("skopeo", image.repository, node.role, phase, started, duration, status, detail)
    ledger.add(outcome)
    shutil.rmtree(out_dir, ignore_errors=True)
    return outcome


def check_dir_layout(out_dir: Path, image: PushedImage) -> str | None:
    """None when skopeo's dir: layout holds exactly the image's blobs, each hashing to its name."""
    found: set[str] = set()
    for path in out_dir.iterdir():
        if path.name in {"manifest.json", "version"}:
            continue
        got = sha256_of(path)
        if got != path.name:
            return f"blob {path.name[:12]} hashes to {got[:12]}"
        found.add("sha256:" + got)
    if found != set(image.blob_digests):
        return f"blobs {sorted(found)} != the image's {sorted(image.blob_digests)}"
    return None


def run_docker_pull(
    ledger: Ledger, docker: Dockerd, image: PushedImage, node: Service, phase: str, deadline: float
) -> Outcome:
    """docker pull the image through node's mirror (as the registry name); its ID must be the config digest."""
    mirror = node.port("http")
    reference = image.reference_via(f"{mirror.host}:{mirror.port}")
    with contextlib.suppress(subprocess.TimeoutExpired):
        docker.docker("image", "rm", "--force", reference, timeout=60)
    started = ledger.now()
    status_code, err = run_with_deadline(["docker", "pull", "--quiet", reference], deadline, docker.env)
    duration = ledger.now() - started
    if status_code is None:
        status, detail = STALLED, f"no result after {deadline:.0f}s (killed)"
    elif status_code == 0:
        image_id = docker.image_id(reference)
        ok = image_id == image.config_digest
        status, detail = (OK, "") if ok else (CORRUPT, f"image ID {image_id} != config {image.config_digest}")
    else:
        status, detail = client_failure(err)
    outcome = Outcome("docker", image.repository, node.role, phase, started, duration, status, detail)
    ledger.add(outcome)
    return outcome


def recheck_linked_outputs(ledger: Ledger) -> list[str]:
    """Outputs that were correct when written but no longer are (the daemon changed its cache file under them)."""
    changed = []
    for path, sha in ledger.linked_outputs:
        if path.exists() and sha256_of(path) != sha:
            changed.append(str(path))
    return changed
