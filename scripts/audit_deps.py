"""Audit requirements.lock for known vulnerabilities; exit 1 on any that audit-ignore.toml does not accept.

Usage: python scripts/audit_deps.py [--lock FILE] [--ignore FILE] [--pip-audit PROGRAM] [--strict]

pip-audit reads the lock (hashes required, nothing installed) and asks its default service, PyPI's JSON API,
for the vulnerabilities of each pinned release (PyPI takes them from the OSV database). Where a release
could not be looked up (pip-audit skips it: a proxy that serves PyPI's project pages but not its per-release
pages does that), this script asks PyPI's project page instead, which lists the vulnerabilities of the newest
release: a pin on the newest release is audited that way, an older pin is reported as not audited (a failure
with --strict). Nothing audited at all is a failure: it means no vulnerability data was reachable.

Accepted findings live in audit-ignore.toml, each with the package, the advisory id (or an alias: CVE,
GHSA, PYSEC), the reason it is accepted and the date the acceptance expires (after it, the finding fails again).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYPI_PROJECT = "https://pypi.org/pypi/{name}/json"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


@dataclasses.dataclass(frozen=True)
class Finding:
    """One advisory against one pinned release."""

    package: str
    version: str
    id: str
    aliases: tuple[str, ...]
    fixed_in: tuple[str, ...]

    def names(self) -> set[str]:
        """The advisory's id and its aliases."""
        return {self.id, *self.aliases}


@dataclasses.dataclass(frozen=True)
class Acceptance:
    """An entry of the ignore file: a finding the project accepts, until a date."""

    package: str
    id: str
    reason: str
    expires: datetime.date


def normalize(name: str) -> str:
    """A package name as PyPI compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(lock: Path) -> dict[str, str]:
    """Package name -> pinned version, for every `name==version` line of the lock."""
    pins = {}
    for line in lock.read_text().splitlines():
        match = PIN.match(line)
        if match:
            pins[normalize(match.group(1))] = match.group(2)
    return pins


def read_acceptances(path: Path) -> list[Acceptance]:
    """The ignore file's entries; a missing field or a wrong type stops the audit with one line."""
    if not path.exists():
        return []
    data = tomllib.loads(path.read_text())
    entries = data.get("accept", [])
    if not isinstance(entries, list):
        raise ValueError(f"{path.name}: 'accept' must be an array of tables ([[accept]])")
    out = []
    for number, entry in enumerate(entries, 1):
        where = f"{path.name}: entry {number}"
        for key in ("package", "id", "reason"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise ValueError(f"{where}: '{key}' must be a non-empty string")
        expires = entry.get("expires")
        if not isinstance(expires, datetime.date) or isinstance(expires, datetime.datetime):
            raise ValueError(f"{where}: 'expires' must be a date (expires = 2027-01-31)")
        unknown = set(entry) - {"package", "id", "reason", "expires"}
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
        out.append(Acceptance(normalize(entry["package"]), entry["id"].strip(), entry["reason"].strip(), expires))
    return out


def run_pip_audit(program: list[str], lock: Path) -> dict[str, Any]:
    """pip-audit's JSON report over the lock (exit 1 just means it found something)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [
            *program,
            "--requirement",
            str(lock),
            "--require-hashes",
            "--disable-pip",
            "--progress-spinner=off",
            "--format=json",
            f"--output={report}",
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if not report.exists():
            raise RuntimeError(f"pip-audit failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}")
        parsed: dict[str, Any] = json.loads(report.read_text())
        return parsed


def newest_release_findings(name: str, version: str) -> list[Finding] | None:
    """Findings from PyPI's project page when version is the newest release; None when it cannot tell."""
    try:
        with urllib.request.urlopen(PYPI_PROJECT.format(name=name), timeout=30) as response:
            project = json.load(response)
    except (OSError, ValueError):
        return None
    if normalize(project["info"]["name"]) != name or project["info"]["version"] != version:
        return None
    return [
        Finding(name, version, v["id"], tuple(v.get("aliases") or ()), tuple(v.get("fixed_in") or ()))
        for v in project.get("vulnerabilities", [])
    ]


def audit(pins: dict[str, str], report: dict[str, Any]) -> tuple[list[Finding], dict[str, str], list[str]]:
    """All findings, how each package was audited (package -> source), and the packages not audited."""
    findings: list[Finding] = []
    source: dict[str, str] = {}
    unaudited: list[str] = []
    seen: set[str] = set()
    for dependency in report.get("dependencies", []):
        name, version = normalize(dependency["name"]), dependency.get("version") or pins.get(dependency["name"], "")
        seen.add(name)
        if "vulns" in dependency and "skip_reason" not in dependency:
            source[name] = "pip-audit"
            findings += [
                Finding(name, version, v["id"], tuple(v.get("aliases") or ()), tuple(v.get("fix_versions") or ()))
                for v in dependency["vulns"]
            ]
            continue
        fallback = newest_release_findings(name, version)
        if fallback is None:
            unaudited.append(f"{name}=={version}")
        else:
            source[name] = "PyPI newest-release data"
            findings += fallback
    unaudited += [f"{name}=={version}" for name, version in pins.items() if name not in seen]
    return findings, source, unaudited


def judge(findings: list[Finding], acceptances: list[Acceptance], today: datetime.date) -> tuple[list[str], int]:
    """Lines to print for findings and acceptances, and how many findings are not accepted."""
    lines, failing, used = [], 0, set()
    for finding in findings:
        match = next((a for a in acceptances if a.package == finding.package and a.id in finding.names()), None)
        fixed = f"; fixed in {', '.join(finding.fixed_in)}" if finding.fixed_in else "; no fixed release"
        aliases = ", ".join(finding.aliases) or "no aliases"
        what = f"{finding.package}=={finding.version} {finding.id} ({aliases}{fixed})"
        if match is not None and match.expires >= today:
            used.add(match)
            lines.append(f"accepted   {what}: {match.reason} (until {match.expires})")
        else:
            failing += 1
            expired = f" (its acceptance expired {match.expires})" if match is not None else ""
            lines.append(f"VULNERABLE {what}{expired}")
    lines += [
        f"warning: unused acceptance {a.package} {a.id} (no finding matches it: remove it)"
        for a in acceptances
        if a not in used and a.expires >= today
    ]
    return lines, failing


def main() -> int:
    """Audit the lock, print one line per finding and a summary; exit 1 on what is not accepted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=Path, default=ROOT / "requirements.lock")
    parser.add_argument("--ignore", type=Path, default=ROOT / "audit-ignore.toml")
    parser.add_argument("--pip-audit", default=shutil.which("pip-audit"), help="the pip-audit program")
    parser.add_argument("--strict", action="store_true", help="also fail when a package could not be audited")
    args = parser.parse_args()
    if not args.pip_audit:
        print("audit_deps: error: pip-audit not found: pip install pip-audit (or give --pip-audit)", file=sys.stderr)
        return 2
    try:
        acceptances = read_acceptances(args.ignore)
        pins = read_pins(args.lock)
        report = run_pip_audit([args.pip_audit], args.lock)
    except (OSError, ValueError, RuntimeError, tomllib.TOMLDecodeError) as error:
        print(f"audit_deps: error: {error}", file=sys.stderr)
        return 2
    findings, source, unaudited = audit(pins, report)
    lines, failing = judge(findings, acceptances, datetime.date.today())
    print("\n".join(lines) if lines else "no known vulnerabilities")
    for name in unaudited:
        print(f"warning: not audited: {name} (no per-release data reachable, and it is not the newest release)")
    by_source = {s: sum(1 for v in source.values() if v == s) for s in sorted(set(source.values()))}
    print(
        f"audit: {len(pins)} pinned packages; audited {len(source)} "
        f"({', '.join(f'{n} by {s}' for s, n in by_source.items()) or 'none'}), not audited {len(unaudited)}; "
        f"{len(findings)} findings, {failing} not accepted"
    )
    if not source:
        print("audit_deps: error: no package could be audited: no vulnerability data reachable", file=sys.stderr)
        return 1
    return 1 if failing or (args.strict and unaudited) else 0


if __name__ == "__main__":
    sys.exit(main())
