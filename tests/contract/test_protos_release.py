"""The protos break nothing in the newest released contract (scripts/protos_release.py, buf breaking), and the
check refuses a change that would break a client built from that release."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUF = Path(__file__).parent / "node" / "node_modules" / ".bin" / "buf"
SCHEDULER = Path("protos/dandelion/scheduler/v1/scheduler.proto")

pytestmark = pytest.mark.skipif(not BUF.exists(), reason=f"run `npm ci` in {BUF.parents[2]} (buf missing)")


def check(protos: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(ROOT / "scripts" / "protos_release.py"), "check", "--buf", str(BUF)]
    return subprocess.run([*argv, "--protos", str(protos)], capture_output=True, text=True, timeout=120)


def copy_of_protos(tmp: Path) -> Path:
    shutil.copy(ROOT / "buf.yaml", tmp / "buf.yaml")
    shutil.copytree(ROOT / "protos", tmp / "protos", ignore=shutil.ignore_patterns("released"))
    return tmp


def test_the_protos_break_nothing_in_the_last_release() -> None:
    done = check(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("protos: no breaking change against release ")


def test_a_deleted_field_is_refused_and_a_new_one_is_not(tmp_path: Path) -> None:
    protos = copy_of_protos(tmp_path)
    proto = protos / SCHEDULER
    text = proto.read_text()
    field = "  bool stream_heartbeats = 5;\n"
    assert field in text
    proto.write_text(text.replace(field, ""))
    refused = check(protos)
    assert refused.returncode == 1
    assert 'field "5" with name "stream_heartbeats" on message "RegisterHostResponse" was deleted' in refused.stderr
    assert "breaking changes against release" in refused.stderr

    proto.write_text(text.replace(field, field + "  string added_later = 99;\n"))
    assert check(protos).returncode == 0, "a new field breaks nothing"
