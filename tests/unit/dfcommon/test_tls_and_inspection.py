"""TLS settings (all three files or none, checked at start-up, equal from flags, environment and file) and who
may call the inspection RPCs."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any, cast

import grpc
import pytest

from dfcommon.configfile import parse_args_with_config
from dfcommon.errors import InvalidArgument
from dfcommon.inspection import InspectionPolicy, InspectionRefused, peer_is_local
from dfcommon.tls import TlsConfig, tls_config, warn_if_plaintext_beyond_loopback
from dfdaemon.flags import build_parser as dfdaemon_parser
from dfdaemon.flags import config_from_args
from supernode.flags import build_parser as supernode_parser
from supernode.flags import from_args

MAKE_CERTS = Path(__file__).resolve().parents[3] / "scripts" / "make_certs.sh"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    directory = tmp_path_factory.mktemp("certs")
    done = subprocess.run(
        ["bash", str(MAKE_CERTS), str(directory), "node=127.0.0.1", "other=127.0.0.2", "dandelion-admin"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return directory


def test_make_certs_keys_are_private_and_names_are_checked(certs: Path) -> None:
    assert {p.name for p in certs.iterdir()} >= {"ca.pem", "ca-key.pem", "node.pem", "node-key.pem"}
    assert all(p.stat().st_mode & 0o077 == 0 for p in certs.glob("*key.pem"))
    bad = subprocess.run(["bash", str(MAKE_CERTS), str(certs), "../x=127.0.0.1"], capture_output=True, text=True)
    assert bad.returncode == 2 and "bad certificate name" in bad.stderr


def test_no_files_is_plaintext_and_all_three_is_tls(certs: Path) -> None:
    assert tls_config(None, None, None) is None
    tls = tls_config(str(certs / "node.pem"), str(certs / "node-key.pem"), str(certs / "ca.pem"), "dandelion")
    assert tls == TlsConfig(certs / "node.pem", certs / "node-key.pem", certs / "ca.pem", "dandelion")
    assert tls.channel_options() == [("grpc.ssl_target_name_override", "dandelion")]


@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        (("node.pem", None, "ca.pem"), "missing --tls-key"),
        ((None, None, "ca.pem"), "missing --tls-cert, --tls-key"),
        (("node.pem", "other-key.pem", "ca.pem"), "--tls-key does not match --tls-cert"),
        (("node.pem", "node-key.pem", "nope.pem"), "--tls-ca"),
        (("node.pem", "node-key.pem", "notes.txt"), "is not a PEM file"),
    ],
)
def test_bad_tls_settings_are_one_line(certs: Path, files: tuple[str | None, ...], fragment: str) -> None:
    (certs / "notes.txt").write_text("not a certificate\n")
    paths = [str(certs / name) if name else None for name in files]
    with pytest.raises(InvalidArgument, match=fragment) as caught:
        tls_config(*paths)
    assert "\n" not in str(caught.value)


def test_server_name_without_files_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="--tls-server-name needs"):
        tls_config(None, None, None, "dandelion")


def test_supernode_tls_equal_from_flags_environment_and_file(certs: Path, tmp_path: Path) -> None:
    files = {"tls-cert": certs / "node.pem", "tls-key": certs / "node-key.pem", "tls-ca": certs / "ca.pem"}
    flags = [arg for name, path in files.items() for arg in (f"--{name}", str(path))]
    base = ["--data-dir", str(tmp_path)]
    by_flags = from_args(parse_args_with_config(supernode_parser(), [*base, *flags], "SUPERNODE_", environ={}))
    env = {f"SUPERNODE_{name.upper().replace('-', '_')}": str(path) for name, path in files.items()}
    env["SUPERNODE_OPEN_INSPECTION"] = "true"
    by_env = from_args(parse_args_with_config(supernode_parser(), base, "SUPERNODE_", environ=env))
    (tmp_path / "sn.yaml").write_text("".join(f"{name}: {path}\n" for name, path in files.items()))
    by_file = from_args(
        parse_args_with_config(supernode_parser(), [*base, "--config", str(tmp_path / "sn.yaml")], "SUPERNODE_", {})
    )
    assert by_flags.tls == by_env.tls == by_file.tls == TlsConfig(files["tls-cert"], files["tls-key"], files["tls-ca"])
    assert (by_flags.open_inspection, by_env.open_inspection) == (False, True)
    assert by_flags.inspection() == InspectionPolicy(tls=True)
    assert from_args(supernode_parser().parse_args(base)).tls is None


def test_dfdaemon_tls_from_environment(certs: Path, tmp_path: Path) -> None:
    env = {
        "DFDAEMON_TLS_CERT": str(certs / "node.pem"),
        "DFDAEMON_TLS_KEY": str(certs / "node-key.pem"),
        "DFDAEMON_TLS_CA": str(certs / "ca.pem"),
        "DFDAEMON_TLS_SERVER_NAME": "dandelion",
    }
    argv = ["--supernode", "127.0.0.1:8002", "--listen", "127.0.0.2", "--data-dir", str(tmp_path)]
    config = config_from_args(parse_args_with_config(dfdaemon_parser(), argv, "DFDAEMON_", environ=env))
    assert config.tls is not None and config.tls.server_name == "dandelion"
    env.pop("DFDAEMON_TLS_KEY")
    with pytest.raises(InvalidArgument, match="missing --tls-key"):
        config_from_args(parse_args_with_config(dfdaemon_parser(), argv, "DFDAEMON_", environ=env))


@pytest.mark.parametrize(
    ("peer", "local"),
    [
        ("ipv4:127.0.0.1:5000", True),
        ("ipv4:127.9.9.9:1", True),
        ("ipv6:[::1]:5000", True),
        ("ipv6:[::ffff:127.0.0.1]:5000", True),
        ("unix:/run/dandelion/dfdaemon.sock", True),
        ("unix:", True),
        ("ipv4:10.0.0.5:5000", False),
        ("ipv4:172.18.0.1:5000", False),
        ("ipv6:[fe80::1%eth0]:5000", False),
        ("ipv6:[::ffff:10.0.0.1]:5000", False),
        ("garbage", False),
        ("ipv4:localhost:1", False),
    ],
)
def test_peer_is_local(peer: str, local: bool) -> None:
    assert peer_is_local(peer) is local


class FakeContext:
    """What InspectionPolicy reads from a servicer context."""

    def __init__(self, peer: str, common_name: str | None = None) -> None:
        self._peer = peer
        self._auth = {"x509_common_name": [common_name.encode()]} if common_name else {}

    def peer(self) -> str:
        return self._peer

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth


REMOTE, LOCAL = "ipv4:10.0.0.5:40000", "ipv4:127.0.0.1:40000"


@pytest.mark.parametrize(
    ("policy", "peer", "cn", "allowed"),
    [
        # Plaintext: loopback only, unless open.
        (InspectionPolicy(), LOCAL, None, True),
        (InspectionPolicy(), REMOTE, None, False),
        (InspectionPolicy(open=True), REMOTE, None, True),
        # TLS: the admin common name only, from anywhere; open lets any certificate of the CA.
        (InspectionPolicy(tls=True), REMOTE, "dandelion-admin", True),
        (InspectionPolicy(tls=True), LOCAL, "node", False),
        (InspectionPolicy(tls=True), LOCAL, None, False),
        (InspectionPolicy(tls=True, admin_names=frozenset({"ops", "sre"})), REMOTE, "sre", True),
        (InspectionPolicy(tls=True, admin_names=frozenset({"ops"})), REMOTE, "dandelion-admin", False),
        (InspectionPolicy(tls=True, open=True), REMOTE, "node", True),
    ],
)
def test_inspection_policy(policy: InspectionPolicy, peer: str, cn: str | None, allowed: bool) -> None:
    context = cast(Any, FakeContext(peer, cn))
    assert (policy.refusal(context) is None) is allowed
    if not allowed:
        with pytest.raises(InspectionRefused) as caught:
            policy.check(context)
        assert caught.value.code == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("host", "with_tls", "warned"),
    [
        ("0.0.0.0", False, True),
        ("10.0.0.7", False, True),
        ("::", False, True),
        ("127.0.0.2", False, False),
        ("::1", False, False),
        ("localhost", False, False),
        ("0.0.0.0", True, False),
    ],
)
def test_one_warning_for_plaintext_beyond_loopback(
    certs: Path, caplog: pytest.LogCaptureFixture, host: str, with_tls: bool, warned: bool
) -> None:
    tls = TlsConfig(certs / "node.pem", certs / "node-key.pem", certs / "ca.pem") if with_tls else None
    with caplog.at_level(logging.WARNING, logger="dfcommon.tls"):
        assert warn_if_plaintext_beyond_loopback("supernode", host, tls) is warned
    assert len(caplog.records) == int(warned)
    if warned:
        assert "plaintext" in caplog.records[0].getMessage() and "--tls-cert" in caplog.records[0].getMessage()
