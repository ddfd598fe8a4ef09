"""requirements.lock pins every dependency pyproject.toml names, with hashes; the audit's ignore file is valid
and its rules (package and advisory id or alias, expiry) decide which findings fail."""

from __future__ import annotations

import datetime
import importlib.util
import re
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def load_audit() -> ModuleType:
    """scripts/audit_deps.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("audit_deps", ROOT / "scripts" / "audit_deps.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["audit_deps"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


audit = load_audit()


def test_lock_pins_every_dependency_with_hashes() -> None:
    """Each runtime and dev requirement has a pin in the lock that satisfies it; every pin carries a hash."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock_text = (ROOT / "requirements.lock").read_text()
    pins = audit.read_pins(ROOT / "requirements.lock")
    missing = []
    for line in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        requirement = Requirement(line)
        pinned = pins.get(audit.normalize(requirement.name))
        if pinned is None or not requirement.specifier.contains(pinned, prereleases=True):
            missing.append(f"{line}: lock has {pinned}")
    assert not missing, "re-run python scripts/lock_deps.py:\n" + "\n".join(missing)
    blocks = re.split(r"\n(?=[A-Za-z0-9])", lock_text)
    unhashed = [b.split()[0] for b in blocks if "==" in b.split()[0] and "--hash=sha256:" not in b]
    assert not unhashed, f"pins without hashes: {unhashed}"


def test_repository_ignore_file_is_valid() -> None:
    """audit-ignore.toml parses, and every entry has a package, an id, a reason and an expiry."""
    for entry in audit.read_acceptances(ROOT / "audit-ignore.toml"):
        assert entry.reason and entry.package and entry.id


FINDING = audit.Finding("pkg", "1.0", "PYSEC-2099-1", ("CVE-2099-1", "GHSA-aaaa-bbbb-cccc"), ("1.1",))
TODAY = datetime.date(2030, 6, 1)


@pytest.mark.parametrize(
    ("entry", "failing"),
    [
        ('package = "pkg"\nid = "CVE-2099-1"\nreason = "not reached"\nexpires = 2030-06-01', 0),
        ('package = "PKG"\nid = "PYSEC-2099-1"\nreason = "not reached"\nexpires = 2031-01-01', 0),
        ('package = "pkg"\nid = "CVE-2099-1"\nreason = "not reached"\nexpires = 2030-05-31', 1),
        ('package = "other"\nid = "CVE-2099-1"\nreason = "not reached"\nexpires = 2031-01-01', 1),
        ('package = "pkg"\nid = "CVE-2099-2"\nreason = "not reached"\nexpires = 2031-01-01', 1),
    ],
    ids=["alias-until-today", "id-other-case-package", "expired", "other-package", "other-advisory"],
)
def test_a_finding_fails_unless_a_live_entry_names_it(tmp_path: Path, entry: str, failing: int) -> None:
    """Only an unexpired entry for the same package and one of the advisory's names accepts a finding."""
    path = tmp_path / "ignore.toml"
    path.write_text(f"[[accept]]\n{entry}\n")
    lines, count = audit.judge([FINDING], audit.read_acceptances(path), TODAY)
    assert count == failing, lines
    assert lines[0].startswith("VULNERABLE" if failing else "accepted")


@pytest.mark.parametrize(
    "entry",
    [
        'package = "pkg"\nid = "CVE-2099-1"\nexpires = 2031-01-01',
        'package = "pkg"\nid = "CVE-2099-1"\nreason = " "\nexpires = 2031-01-01',
        'package = "pkg"\nid = "CVE-2099-1"\nreason = "r"',
        'package = "pkg"\nid = "CVE-2099-1"\nreason = "r"\nexpires = "soon"',
        'package = "pkg"\nid = "CVE-2099-1"\nreason = "r"\nexpires = 2031-01-01\nnote = "x"',
    ],
    ids=["no-reason", "blank-reason", "no-expiry", "expiry-not-a-date", "unknown-key"],
)
def test_an_entry_without_reason_or_expiry_is_refused(tmp_path: Path, entry: str) -> None:
    """A malformed acceptance stops the audit instead of silencing a finding."""
    path = tmp_path / "ignore.toml"
    path.write_text(f"[[accept]]\n{entry}\n")
    with pytest.raises(ValueError, match="entry 1"):
        audit.read_acceptances(path)
