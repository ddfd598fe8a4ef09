"""Origin bytes per file (and registry bytes per layer) against a budget computed from the faults caused.

A swarm fetches each file from its origin once. Each fault the driver caused may legitimately cost one more
copy at most, except a supernode (seed) kill, which can send every peer back to the source at once:

    budget(f) = size(f) x (1 + P*S + O + K + F + D(f))

P peers, S kills of the supernode and of the seed role's process (the first seed peer, else the supernode),
O restarts of the origin (or of the registry, for layers), K dfdaemon kills, F disk fills, and D(f) downloads
of f started while their own dfdaemon was down (dfget then fetches from the origin itself).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .cluster import ROLE_ALIASES, Cluster
from .workload import Outcome

FORMULA = "size x (1 + P*S + O + K + F + D(f))"


@dataclass(frozen=True)
class BudgetTerms:
    """The counts the formula uses."""

    peers: int
    scheduler_kills: int
    source_restarts: int
    peer_kills: int
    fills: int

    def copies(self, direct_downloads: int) -> int:
        """How many whole copies of one file the origin may send."""
        return (
            1
            + self.peers * self.scheduler_kills
            + self.source_restarts
            + self.peer_kills
            + self.fills
            + direct_downloads
        )


def terms_for(cluster: Cluster, kills: Mapping[str, int], fills: int, source_role: str) -> BudgetTerms:
    """The budget terms from the kills per role the driver caused."""
    scheduler_roles = {"supernode", ROLE_ALIASES.get("seed", "seed")}
    peer_roles = {p.role for p in cluster.peers}
    return BudgetTerms(
        peers=len(peer_roles),
        scheduler_kills=sum(kills.get(role, 0) for role in scheduler_roles),
        source_restarts=kills.get(source_role, 0),
        peer_kills=sum(kills.get(role, 0) for role in peer_roles),
        fills=fills,
    )


def direct_downloads(outcomes: Iterable[Outcome], windows: Iterable[tuple[str, float, float]]) -> Counter[str]:
    """Per target, the dfget runs that started while the dfdaemon they named was down."""
    windows = list(windows)
    counts: Counter[str] = Counter()
    for outcome in outcomes:
        if outcome.client != "dfget":
            continue
        for role, down, up in windows:
            if role == outcome.via and down - 0.5 <= outcome.started <= up + 0.5:
                counts[outcome.target] += 1
                break
    return counts


def check(
    served: Mapping[str, int],
    sizes: Mapping[str, int],
    terms: BudgetTerms,
    direct: Mapping[str, int],
    what: str,
) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Per item: bytes served, budget, copies; and a violation line for each item over budget."""
    report: dict[str, dict[str, float]] = {}
    problems: list[str] = []
    for name, size in sorted(sizes.items()):
        copies = terms.copies(direct.get(name, 0))
        got = served.get(name, 0)
        report[name] = {"bytes": got, "size": size, "copies": round(got / size, 2) if size else 0, "budget": copies}
        if got > copies * size:
            problems.append(f"{what} {name}: {got} bytes = {got / size:.1f} copies > budget {copies} ({FORMULA})")
    return report, problems
