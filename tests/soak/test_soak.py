"""The bounded chaos soak (about 3 minutes): faults at random under real dfget/skopeo/docker load.

Longer: `DANDELION_SOAK_SECONDS=1800 python -m pytest -m soak -s` or `python -m tests.soak --minutes 30`.
Seed, fault kinds and peers come from DANDELION_SOAK_SEED / _FAULTS / _PEERS (see config.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .config import config_from

pytestmark = [pytest.mark.soak, pytest.mark.e2e]

_CONFIG = config_from([], os.environ)


def _skip_reason() -> str | None:
    from fixtures.clients import missing_binaries

    missing = missing_binaries("docker-registry", "skopeo", "mount")
    if missing:
        return f"not installed: {', '.join(missing)}"
    if os.geteuid() != 0 and {"fill_disk", "fill_disk_long"} & set(_CONFIG.faults):
        return "fill_disk mounts a tmpfs: run as root or with DANDELION_SOAK_FAULTS=-fill_disk"
    return None


@pytest.mark.timeout(int(_CONFIG.seconds + 600))
def test_chaos_soak(tmp_path: Path, pytestconfig: pytest.Config) -> None:
    """Every download completes byte-identical or fails clearly within its deadline; afterwards everything
    downloads within 30 s, slot gauges are back at 0, RSS stays bounded and origin bytes stay within budget."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from .driver import Soak

    config = config_from([], os.environ)
    config.out_dir = tmp_path / "soak"
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    lines: list[str] = []

    def log(text: str) -> None:
        lines.append(text)
        # Shown live and in CI output even when the test passes (outside pytest's capture).
        if capture is not None:
            with capture.global_and_fixture_disabled():
                print(text, flush=True)
        else:
            print(text, flush=True)

    summary = Soak(config, log).run()
    assert not summary["harness_errors"], summary["harness_errors"]
    assert not summary["violations"], "\n".join(
        [f"{len(summary['violations'])} invariant violations (seed {summary['seed']}); "
         f"summary: {config.out_dir / 'summary.json'}", *summary["violations"]]
    )  # fmt: skip
