"""The registry restarts in the middle of a layer: the dfdaemon resumes its fetch with Range; a layer that cannot
be had cuts the client's response with one log line, no traceback."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fixtures.images import MiB, build_and_push
from fixtures.registry import Registry
from mirror_swarm import MirrorNode, MirrorSwarm

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SwarmFactory = Callable[..., MirrorSwarm]
LAYER = 40 * MiB
RATE = "16M"  # the dfdaemon's --download-limit: the layer takes ~2.5 s, long enough to cut it on the way
# No in-process seed peer: the dfdaemon is the one that reads the registry (a seed peer resumes with the same code).
OWN_READ = ("--no-seed-peer",)


def kill_registry(registry: Registry) -> None:
    """SIGKILL the registry (no graceful end of the response in flight)."""
    assert registry.proc is not None
    registry.proc.kill()
    registry.proc = None


def read_blob(
    node: MirrorNode, path: str, at: int, action: Callable[[], None], headers: dict[str, str] | None = None
) -> tuple[bytes, BaseException | None]:
    """GET path through the mirror; once `at` bytes arrived, run action in a thread. (body, transport error)."""
    body = bytearray()
    started: threading.Thread | None = None
    try:
        with node.client() as client, client.stream("GET", path, headers=headers) as response:
            assert response.status_code == 200
            for chunk in response.iter_bytes():
                body += chunk
                if started is None and len(body) >= at:
                    started = threading.Thread(target=action)
                    started.start()
    except httpx.TransportError as exc:
        return bytes(body), exc
    finally:
        if started is not None:
            started.join()
    return bytes(body), None


def test_a_registry_restart_mid_layer_is_resumed_not_refetched(
    tmp_path: Path, open_registry: Registry, swarm_factory: SwarmFactory
) -> None:
    image = build_and_push(tmp_path, open_registry.addr, "ns/restart", [LAYER])
    layer = image.layer_digests[0]
    node = swarm_factory(open_registry, extra_args=("--download-limit", RATE), supernode_args=OWN_READ).nodes[0]

    def restart() -> None:
        kill_registry(open_registry)
        time.sleep(1.0)
        open_registry.start()

    body, error = read_blob(node, f"/v2/{image.repository}/blobs/{layer}", 8 * MiB, restart)
    assert error is None, node.proc.tail()
    assert "sha256:" + hashlib.sha256(body).hexdigest() == layer
    log = node.proc.log()
    resumed_at = [int(n) for n in re.findall(r"resuming at byte (\d+)", log)]
    assert resumed_at, log[-3000:]
    # What the registry sent: the bytes before the cut (the killed registry logged nothing for them, the resume's
    # offset counts them) and every GET of the layer after its restart.
    after = [r for r in open_registry.access_log() if r.method == "GET" and r.blob_digest == layer]
    assert [r.status for r in after] == [206] * len(after), after  # never the whole layer again
    sent = resumed_at[0] + sum(r.size for r in after)
    print(f"registry restart mid-layer: registry sent {sent} bytes for a {LAYER}-byte layer ({sent / LAYER:.3f}x)")
    assert sent <= LAYER * 1.02
    assert "Traceback" not in log and "Exception in ASGI application" not in log


def test_a_layer_the_registry_never_finishes_cuts_the_response_with_one_line(
    tmp_path: Path, open_registry: Registry, swarm_factory: SwarmFactory
) -> None:
    image = build_and_push(tmp_path, open_registry.addr, "ns/gone", [LAYER])
    layer = image.layer_digests[0]
    node = swarm_factory(open_registry, extra_args=("--download-limit", RATE), supernode_args=OWN_READ).nodes[0]

    body, error = read_blob(
        node, f"/v2/{image.repository}/blobs/{layer}", 4 * MiB, lambda: kill_registry(open_registry)
    )
    assert error is not None and len(body) < LAYER  # the client sees a cut, never a short body that looks whole
    log = node.proc.log()
    assert "gave up after" in log, log[-3000:]
    aborted = [line for line in log.splitlines() if "aborted=" in line]
    assert len(aborted) == 1 and "OriginError" in aborted[0], aborted
    assert "Traceback" not in log and "Exception in ASGI application" not in log

    # A client that hangs up mid-body is one access line too.
    open_registry.start()
    with node.client() as client, client.stream("GET", f"/v2/{image.repository}/blobs/{layer}") as response:
        next(response.iter_bytes())
    time.sleep(1.0)
    log = node.proc.log()
    assert "Traceback" not in log and "Exception in ASGI application" not in log
