"""The soak's settings: one dataclass, equal to the command-line flags and the DANDELION_SOAK_* environment."""

from __future__ import annotations

import argparse
import os
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

# Every fault kind the driver knows, in the order the summary lists them.
FAULT_KINDS = (
    "kill_peer",
    "kill_seed",
    "kill_supernode",
    "restart_origin",
    "restart_registry",
    "fill_disk",
    "fill_disk_long",
    "cut_client",
    "trickle_parent",
    "garbage",
)
# Kinds on by default (the CI soak). A kind listed in DISABLED_BY_DEFAULT breaks an invariant today because of a
# known bug (see tests/soak/README.md); enable it with --faults all or DANDELION_SOAK_FAULTS once the fix lands.
# (fill_disk_long was such a kind until a full cache disk made downloads fail with a clear error.)
DISABLED_BY_DEFAULT: frozenset[str] = frozenset()


@dataclass
class SoakConfig:
    """What to run, for how long, with which faults; validated on creation."""

    seconds: float = 150.0  # length of the fault phase (warm-up and the final round come on top)
    seed: int = 0  # 0: pick one from the clock (printed, so a failure can be replayed)
    faults: tuple[str, ...] = tuple(k for k in FAULT_KINDS if k not in DISABLED_BY_DEFAULT)
    peers: int = 4
    seed_peers: int = 1  # dfdaemons with --seed (the role "seed" is the first; 0: the supernode's in-process seed peer)
    files: int = 4
    new_file_every: float = 25.0  # a fresh origin file this often, so new tasks keep starting
    dfget_parallel: int = 3
    download_deadline: float = 60.0  # a download neither done nor failed after this is "stalled"
    final_deadline: float = 30.0  # every file must download within this once the faults stop
    fault_gap: tuple[float, float] = (1.0, 4.0)  # pause between two faults, seconds
    max_file_mib: int = 6
    supernode_args: tuple[str, ...] = ()  # extra flags for the supernode, e.g. ("--origin-fetch", "seed")
    peer_args: tuple[str, ...] = ()  # extra flags for every dfdaemon
    strict_grpc: bool = True  # a junk gRPC request answered UNKNOWN (unhandled exception) is a violation
    docker: bool = True  # a real docker pull after warm-up and in the final round
    docker_every: float = 0.0  # also one every this many seconds of the fault phase (0: none)
    out_dir: Path = field(default_factory=lambda: Path("soak-out"))

    def __post_init__(self) -> None:
        """Reject settings the soak cannot honour."""
        if self.seed == 0:
            self.seed = int(time.time() * 1000) % 1_000_000_007 or 1
        unknown = [kind for kind in self.faults if kind not in FAULT_KINDS]
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; known: {', '.join(FAULT_KINDS)}")
        if self.seconds < 0:
            raise ValueError("seconds must be >= 0")
        if not 1 <= self.peers <= 40:
            raise ValueError("peers must be between 1 and 40 (127.0.0.11 ...)")
        if not 0 <= self.seed_peers <= 6:
            raise ValueError("seed_peers must be between 0 and 6 (127.0.0.5 ...)")
        if self.files < 1 or self.dfget_parallel < 1 or self.max_file_mib < 1:
            raise ValueError("files, dfget_parallel and max_file_mib must be >= 1")
        if self.download_deadline <= 0 or self.final_deadline <= 0:
            raise ValueError("deadlines must be > 0")
        low, high = self.fault_gap
        if not 0 <= low <= high:
            raise ValueError("fault_gap must be LOW<=HIGH seconds")


def parse_faults(text: str) -> tuple[str, ...]:
    """'all', 'default', or a comma list; '-kind' removes a kind from the default set."""
    text = text.strip()
    if text in ("", "default"):
        return SoakConfig().faults
    if text == "all":
        return FAULT_KINDS
    if text == "none":
        return ()
    items = [item.strip() for item in text.split(",") if item.strip()]
    if all(item.startswith("-") for item in items):
        removed = {item[1:] for item in items}
        return tuple(kind for kind in SoakConfig().faults if kind not in removed)
    return tuple(dict.fromkeys(items))


def build_parser() -> argparse.ArgumentParser:
    """Flags of `python -m tests.soak`; each also reads DANDELION_SOAK_<FLAG>."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.soak",
        description="Chaos soak of a real Dandelion cluster: faults at random, invariants checked throughout.",
    )
    parser.add_argument("--seconds", type=float, help="length of the fault phase (default 150)")
    parser.add_argument("--minutes", type=float, help="the same in minutes")
    parser.add_argument("--seed", type=int, help="random seed (printed by every run; replays its fault sequence)")
    parser.add_argument(
        "--faults", help=f"'all', 'none', a comma list, or '-kind,...'; kinds: {', '.join(FAULT_KINDS)}"
    )
    parser.add_argument("--peers", type=int)
    parser.add_argument("--seed-peers", type=int, help="seed peers, dfdaemons with --seed (default 1; 0: none)")
    parser.add_argument("--files", type=int)
    parser.add_argument("--parallel", type=int, dest="dfget_parallel", help="dfget runs at once (default 3)")
    parser.add_argument("--fault-gap", help="LOW,HIGH seconds between two faults (default 1,4)")
    parser.add_argument("--max-file-mib", type=int, help="origin files are 1 MiB to this (default 6)")
    parser.add_argument("--supernode-args", help="extra supernode flags, one string (shell-split)")
    parser.add_argument("--peer-args", help="extra dfdaemon flags, one string (shell-split)")
    parser.add_argument("--docker-every", type=float, help="a docker pull every N s of faults too (default 0: none)")
    parser.add_argument("--strict-grpc", action="store_true", help="junk gRPC answered UNKNOWN is a violation")
    parser.add_argument("--no-docker", action="store_true", help="skip the docker pulls (skopeo only)")
    parser.add_argument("--out", type=Path, help="directory for logs, outputs and summary.json")
    return parser


def config_from(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> SoakConfig:
    """The config from flags, else DANDELION_SOAK_* variables, else defaults."""
    env = os.environ if environ is None else environ
    ns = build_parser().parse_args(argv)
    values: dict[str, object] = {}
    seconds = ns.seconds if ns.seconds is not None else (ns.minutes * 60 if ns.minutes is not None else None)
    if seconds is None and env.get("DANDELION_SOAK_SECONDS"):
        seconds = float(env["DANDELION_SOAK_SECONDS"])
    if seconds is not None:
        values["seconds"] = seconds
    seed = ns.seed if ns.seed is not None else env.get("DANDELION_SOAK_SEED")
    if seed is not None:
        values["seed"] = int(seed)
    faults = ns.faults if ns.faults is not None else env.get("DANDELION_SOAK_FAULTS")
    if faults is not None:
        values["faults"] = parse_faults(faults)
    gap = ns.fault_gap if ns.fault_gap is not None else env.get("DANDELION_SOAK_FAULT_GAP")
    if gap:
        low, _, high = gap.partition(",")
        values["fault_gap"] = (float(low), float(high or low))
    for name in ("supernode_args", "peer_args"):
        text = getattr(ns, name)
        text = text if text is not None else env.get(f"DANDELION_SOAK_{name.upper()}")
        if text:
            values[name] = tuple(shlex.split(text))
    for name in ("peers", "seed_peers", "files", "dfget_parallel", "max_file_mib"):
        given = getattr(ns, name)
        variable = "DANDELION_SOAK_" + name.removeprefix("dfget_").upper()
        if given is None and env.get(variable):
            given = int(env[variable])
        if given is not None:
            values[name] = given
    every = ns.docker_every if ns.docker_every is not None else env.get("DANDELION_SOAK_DOCKER_EVERY")
    if every is not None:
        values["docker_every"] = float(every)
    if ns.strict_grpc or env.get("DANDELION_SOAK_STRICT_GRPC", "1") == "1":
        values["strict_grpc"] = True
    else:
        values["strict_grpc"] = False
    if ns.no_docker or env.get("DANDELION_SOAK_DOCKER", "1") == "0":
        values["docker"] = False
    if ns.out is not None:
        values["out_dir"] = ns.out
    known = {f.name for f in fields(SoakConfig)}
    return SoakConfig(**{k: v for k, v in values.items() if k in known})  # type: ignore[arg-type]
