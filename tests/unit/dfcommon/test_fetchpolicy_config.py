"""The fetch policy's options: the same entries from flags, environment and config file, for both components, and
the policy each component derives from where it listens."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfcommon.configfile import parse_args_with_config
from dfcommon.errors import InvalidArgument
from dfcommon.fetchpolicy import FetchPolicy
from dfdaemon import flags as daemon
from supernode.config import SupernodeConfig
from supernode.flags import build_parser, from_args


def supernode_config(argv: list[str], env: dict[str, str]) -> SupernodeConfig:
    return from_args(parse_args_with_config(build_parser(), ["--data-dir", "d", *argv], "SUPERNODE_", env))


def test_supernode_entries_from_flags_environment_and_file(tmp_path: Path) -> None:
    file = tmp_path / "sn.toml"
    file.write_text('origin-allow = ["127.0.0.1:5000", "10.0.0.0/8"]\norigin-deny = "*:9100"\n')
    from_file = supernode_config(["--config", str(file)], {})
    assert (from_file.origin_allow, from_file.origin_deny) == (("127.0.0.1:5000", "10.0.0.0/8"), ("*:9100",))
    from_env = supernode_config(["--config", str(file)], {"SUPERNODE_ORIGIN_ALLOW": "a.corp, b.corp"})
    assert from_env.origin_allow == ("a.corp", "b.corp")
    from_flags = supernode_config(
        ["--origin-allow", "c.corp", "--origin-allow", "d.corp,e.corp"], {"SUPERNODE_ORIGIN_ALLOW": "a.corp"}
    )
    assert from_flags.origin_allow == ("c.corp", "d.corp", "e.corp")


def test_supernode_policy_follows_its_listeners() -> None:
    wide = supernode_config(["--listen", "0.0.0.0:8002", "--metrics", "127.0.0.1:8003"], {})
    policy = wide.fetch_policy(8002)
    assert policy.refuse_loopback
    assert {(o.port, o.what) for o in policy.own} == {(8002, "gRPC"), (8003, "metrics")}
    local = supernode_config(["--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:8003"], {})
    assert not local.fetch_policy(40000).refuse_loopback
    exposed_metrics = supernode_config(["--listen", "127.0.0.1:0", "--metrics", "0.0.0.0:8003"], {})
    assert exposed_metrics.fetch_policy(40000).refuse_loopback


@pytest.mark.parametrize("entry", ["10.0.0.0/99", "*", "bad host"])
def test_bad_entries_are_refused_at_startup(entry: str) -> None:
    with pytest.raises(InvalidArgument, match="--origin-deny"):
        supernode_config(["--origin-deny", entry], {})
    with pytest.raises(InvalidArgument, match="--origin-deny"):
        daemon.config_from_args(
            parse_args_with_config(
                daemon.build_parser(),
                ["--supernode", "127.0.0.1:8002", "--listen", "127.0.0.2", "--data-dir", "d", "--origin-deny", entry],
                "DFDAEMON_",
                {},
            )
        )


def test_dfdaemon_policy_follows_its_listeners() -> None:
    def policy(*argv: str, env: dict[str, str] | None = None) -> FetchPolicy:
        ns = parse_args_with_config(
            daemon.build_parser(),
            ["--supernode", "127.0.0.1:8002", "--data-dir", "d", "--daemon-listen", "unix:/tmp/x.sock", *argv],
            "DFDAEMON_",
            env or {},
        )
        return daemon.config_from_args(ns).fetch_policy(65000)

    local = policy("--listen", "127.0.0.2", "--metrics", "127.0.0.1:65003")
    assert not local.refuse_loopback
    whats = {(o.port, o.what) for o in local.own}
    assert whats == {(65000, "PeerService"), (65001, "mirror"), (65003, "metrics"), (8002, "supernode")}
    assert policy("--listen", "10.0.0.7").refuse_loopback
    assert policy("--listen", "127.0.0.2", "--mirror", "0.0.0.0:65001").refuse_loopback
    allowed = policy("--listen", "10.0.0.7", env={"DFDAEMON_ORIGIN_ALLOW": "127.0.0.1:8080"})
    allowed.check("127.0.0.1", "127.0.0.1", 8080)


def test_dfdaemon_allows_its_own_registry() -> None:
    """--registry on this host's loopback keeps working when the dfdaemon listens beyond loopback; other loopback
    ports do not, and with the mirror off nothing is implied."""

    def policy(*argv: str) -> FetchPolicy:
        base = ["--supernode", "127.0.0.1:8002", "--data-dir", "d", "--listen", "10.0.0.7", "--daemon-listen", "unix:x"]
        return daemon.config_from_args(
            parse_args_with_config(daemon.build_parser(), [*base, *argv], "DFDAEMON_", {})
        ).fetch_policy(65000)

    with_registry = policy("--registry", "http://localhost:5000")
    with_registry.check("localhost", "127.0.0.1", 5000)
    assert with_registry.refusal("localhost", "127.0.0.1", 5001) is not None
    assert policy("--registry", "http://[::1]:5000").refusal("::1", "::1", 5000) is None
    assert policy("--registry", "http://localhost:5000", "--mirror", "off").refusal("localhost", "127.0.0.1", 5000)
