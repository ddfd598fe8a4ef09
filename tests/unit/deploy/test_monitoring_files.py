"""The Prometheus alert rules and the Grafana dashboard in deploy/ query only metrics the binaries export."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from dfcommon.metrics import FAMILIES

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
RULES = DEPLOY / "prometheus" / "dandelion-alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dandelion-dashboard.json"
NAME = re.compile(r"\bdandelion_[a-z_]+")
SELECTOR = re.compile(r"\b(dandelion_[a-z_]+)\{([^}]*)\}")
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def rule_expressions() -> list[str]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES.read_text())["groups"]
    return [str(rule["expr"]) for group in groups for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    panels: list[dict[str, Any]] = json.loads(DASHBOARD.read_text())["panels"]
    return [str(target["expr"]) for panel in panels for target in panel["targets"]]


def family(sample: str) -> str:
    """The family a sample name belongs to (a counter's _total, a histogram's _bucket ...)."""
    for known in FAMILIES.values():
        if sample in known:
            return sample
    for suffix in SUFFIXES:
        if sample.endswith(suffix) and any(sample.removesuffix(suffix) in known for known in FAMILIES.values()):
            return sample.removesuffix(suffix)
    raise AssertionError(f"{sample} is exported by no binary")


@pytest.mark.parametrize("source", ["rules", "dashboard"])
def test_every_queried_metric_is_exported_with_its_component(source: str) -> None:
    expressions = rule_expressions() if source == "rules" else dashboard_expressions()
    assert expressions
    for expr in expressions:
        names = NAME.findall(expr)
        assert names, expr
        for name in names:
            family(name)
        for name, matchers in SELECTOR.findall(expr):
            component = re.search(r'component="(\w+)"', matchers)
            if component:
                assert family(name) in FAMILIES[component.group(1)], f"{component.group(1)} does not export {name}"


def test_dashboard_is_grafana_json() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and dashboard["uid"] and dashboard["title"]
    assert all(panel["datasource"]["uid"] == "${datasource}" for panel in dashboard["panels"])


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")
def test_promtool_checks_and_unit_tests(tmp_path: Path) -> None:
    checked = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        ["promtool", "test", "rules", "dandelion-alerts.test.yml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=RULES.parent,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # The dashboard's queries parse as PromQL: as recording rules, which promtool checks.
    records = [{"record": f"dashboard:q{i}", "expr": expr} for i, expr in enumerate(dashboard_expressions())]
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    parsed = subprocess.run(
        ["promtool", "check", "rules", str(tmp_path / "dashboard.yml")], capture_output=True, text=True, timeout=60
    )
    assert parsed.returncode == 0, parsed.stdout + parsed.stderr
