"""deploy/systemd: the unit files' command lines are ones the binaries accept with the environment files shipped
beside them, and systemd itself finds nothing wrong with the units (`systemd-analyze verify`, when installed)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.k8s_manifests import ParseError, parse_command

import dfcommon.advertise

SYSTEMD = Path(__file__).resolve().parents[3] / "deploy" / "systemd"
UNITS = sorted(SYSTEMD.glob("*.service"))
INSTALLED = "/opt/dandelion/bin/"
ENV_DIR = "/etc/dandelion/"


def unit_settings(path: Path) -> list[tuple[str, str]]:
    """(key, value) of every [Service] setting, continued lines joined, in order."""
    settings: list[tuple[str, str]] = []
    section, pending = "", ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            settings.append((key, value))
    return settings


def environment(settings: list[tuple[str, str]]) -> dict[str, str]:
    """The variables of the unit's EnvironmentFile=s, read from the examples shipped beside it."""
    env: dict[str, str] = {}
    for key, value in settings:
        if key != "EnvironmentFile":
            continue
        shipped = SYSTEMD / value.removeprefix("-").removeprefix(ENV_DIR)
        if not shipped.exists():
            assert value.startswith("-"), f"{value} is required by the unit but no example ships in deploy/systemd"
            continue
        for line in shipped.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                name, _, text = line.partition("=")
                env[name.strip()] = text.strip()
    return env


def commands(settings: list[tuple[str, str]]) -> list[list[str]]:
    """ExecStartPre= and ExecStart= as argv, with the installed program's name only (`dfdaemon ...`)."""
    found = []
    for key, value in settings:
        if key in ("ExecStartPre", "ExecStart"):
            argv = shlex.split(value.lstrip("+-@!"))
            assert argv[0].startswith(INSTALLED), argv[0]
            found.append([argv[0].removeprefix(INSTALLED), *argv[1:]])
    return found


def test_units_are_shipped_for_every_role() -> None:
    assert [u.name for u in UNITS] == [
        "dandelion-dfdaemon.service",
        "dandelion-seed.service",
        "dandelion-supernode.service",
    ]


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_the_binaries_accept_the_units_command_lines(unit: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A peer on 0.0.0.0 advertises the source address of its route to the supernode: this host's routes are not
    # the unit's business, so the route is a fixed address here.
    monkeypatch.setattr(dfcommon.advertise, "route_source", lambda target: "10.0.0.7")
    settings = unit_settings(unit)
    env = environment(settings)
    argvs = commands(settings)
    assert argvs and argvs[-1][0] in ("supernode", "dfdaemon")
    for argv in argvs:
        try:
            ns = parse_command(argv, env)
        except ParseError as exc:
            pytest.fail(f"{unit.name}: {' '.join(argv)}: {exc}")
        assert ns is not None
    state = dict(settings)["StateDirectory"]
    data_dir = argvs[-1][argvs[-1].index("--data-dir") + 1]
    assert data_dir == f"/var/lib/{state}"  # created for the unit's user by systemd
    if "--daemon-listen" in argvs[-1]:
        socket_dir = os.path.dirname(argvs[-1][argvs[-1].index("--daemon-listen") + 1].removeprefix("unix:"))
        assert socket_dir == f"/run/{dict(settings)['RuntimeDirectory']}"


def test_a_unit_with_an_unknown_flag_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dfcommon.advertise, "route_source", lambda target: "10.0.0.7")
    settings = unit_settings(SYSTEMD / "dandelion-seed.service")
    argv = [*commands(settings)[-1], "--cache-size", "1G"]
    with pytest.raises(ParseError, match="unrecognized arguments: --cache-size 1G"):
        parse_command(argv, environment(settings))


def test_systemd_verifies_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    scripts = Path(sys.executable).parent
    if analyze is None or not (scripts / "dfdaemon").exists() or not (scripts / "supernode").exists():
        pytest.skip("systemd-analyze or the installed console scripts are missing")
    for unit in UNITS:  # the programs where this Python installed them; environment files optional
        text = unit.read_text().replace(INSTALLED, f"{scripts}/")
        text = text.replace(f"EnvironmentFile={ENV_DIR}", f"EnvironmentFile=-{ENV_DIR}")
        (tmp_path / unit.name).write_text(text)
    done = subprocess.run(
        [analyze, "verify", "--man=no", *sorted(str(p) for p in tmp_path.iterdir())],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    # Unknown keys are only warnings for systemd: any line about the units fails the test.
    problems = [line for line in done.stderr.splitlines() if str(tmp_path) in line or "dandelion" in line]
    assert done.returncode == 0 and not problems, done.stderr
