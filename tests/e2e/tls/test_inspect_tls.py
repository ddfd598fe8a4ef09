"""dfinspect and the web view of a supernode with mutual TLS: an admin certificate may inspect, a member's may not
(PERMISSION_DENIED over gRPC, 403 over HTTPS) unless --open-inspection, and no certificate gets no connection."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fixtures.certs import Identity, identity, make_certs
from fixtures.clients import missing_binaries
from fixtures.processes import ProcessGroup, free_port
from tls_cluster import start_supernode

pytestmark = pytest.mark.e2e


def dfinspect(target: str, who: Identity | None, *args: str) -> subprocess.CompletedProcess[str]:
    """dfinspect against target with who's certificate (None: plaintext)."""
    argv = [sys.executable, "-m", "dfinspect", "--supernode", target, *(who.flags() if who else []), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def https_get(url: str, ca: Path, who: Identity | None) -> httpx.Response:
    """GET url trusting ca, presenting who's certificate (None: none)."""
    context = ssl.create_default_context(cafile=str(ca))
    if who is not None:
        context.load_cert_chain(str(who.cert), str(who.key))
    with httpx.Client(verify=context, timeout=10) as client:
        return client.get(url)


def test_only_admins_inspect_over_grpc_and_https(process_group: ProcessGroup, tmp_path: Path) -> None:
    if missing_binaries("openssl"):
        pytest.skip("openssl is not installed")
    make_certs(tmp_path / "certs")  # node (127.0.0.1 and more) and dandelion-admin
    member, admin = identity(tmp_path / "certs", "node"), identity(tmp_path / "certs", "dandelion-admin")
    web = free_port()
    supernode = start_supernode(process_group, tmp_path, member, "--web", f"127.0.0.1:{web}")
    target = supernode.target

    shown = dfinspect(target, admin, "tasks")
    assert (shown.returncode, shown.stdout.strip()) == (0, "no tasks"), shown.stderr
    hosts = dfinspect(target, admin, "hosts").stdout.splitlines()  # the supernode's in-process seed peer only
    assert len(hosts) == 2 and "seed peer" in hosts[1], hosts
    refused = dfinspect(target, member, "tasks")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"dfinspect: the supernode at {target} refused ListTasks: inspection needs an admin certificate "
        "(common name dandelion-admin); this one is 'node'"
    )
    plain = dfinspect(target, None, "tasks")
    assert plain.returncode == 1 and plain.stderr.startswith(f"dfinspect: cannot reach the supernode at {target}")
    assert len(plain.stderr.strip().splitlines()) == 1

    url = f"https://127.0.0.1:{web}/api/swarm"
    allowed = https_get(url, admin.ca, admin)
    assert allowed.status_code == 200 and allowed.json()["tasks"] == []
    page = https_get(f"https://127.0.0.1:{web}/", admin.ca, admin)
    assert page.status_code == 200 and "Dandelion swarm" in page.text
    denied = https_get(url, member.ca, member)
    assert denied.status_code == 403 and "inspection needs an admin certificate" in denied.text
    with pytest.raises(httpx.HTTPError):
        https_get(url, member.ca, None)  # the handshake asks for a certificate the cluster CA signed

    web = free_port()
    flags = ("--web", f"127.0.0.1:{web}", "--open-inspection")
    opened = start_supernode(process_group, tmp_path, member, *flags, name="open")
    assert dfinspect(opened.target, member, "tasks").returncode == 0
    assert https_get(f"https://127.0.0.1:{web}/api/swarm", member.ca, member).status_code == 200
