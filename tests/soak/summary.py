"""The soak's summary: faults injected, downloads done and failed, worst stall, origin bytes per file, verdict."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .config import FAULT_KINDS

if TYPE_CHECKING:
    from .driver import Soak
    from .faults import FaultContext


def build_summary(
    soak: Soak,
    ctx: FaultContext,
    warmup_end: float,
    faults_end: float,
    gauges: dict[str, dict[str, float]],
    rss: dict[str, dict[str, int]],
    budgets: dict[str, Any],
    violations: list[str],
    gauge_names: list[str],
) -> dict[str, Any]:
    """Everything a reader needs to judge or replay the run, JSON-ready."""
    outcomes = soak.ledger.outcomes
    by_client: dict[str, Counter[str]] = {}
    for outcome in outcomes:
        by_client.setdefault(outcome.client, Counter())[outcome.status] += 1
    worst = max(outcomes, key=lambda o: o.duration, default=None)
    return {
        "seed": soak.cfg.seed,
        "replay": f"python -m tests.soak --seed {soak.cfg.seed} --seconds {soak.cfg.seconds:g} "
        f"--faults {','.join(soak.cfg.faults) or 'none'}",
        "fault_kinds_enabled": list(soak.cfg.faults),
        "fault_kinds_disabled": [k for k in FAULT_KINDS if k not in soak.cfg.faults],
        "seconds": {
            "warmup_end": round(warmup_end, 1),
            "faults_end": round(faults_end, 1),
            "total": round(soak.ledger.now(), 1),
        },
        "faults_injected": dict(Counter(f.kind for f in soak.faults)),
        "kills_by_role": dict(ctx.kills),
        "crashes_by_role": dict(soak.watcher.crashes),
        "downloads": {client: dict(counts) for client, counts in sorted(by_client.items())},
        "downloads_done": sum(1 for o in outcomes if o.status == "ok"),
        "downloads_failed": sum(1 for o in outcomes if o.status != "ok"),
        "worst_stall": (
            {
                "seconds": round(worst.duration, 1),
                "client": worst.client,
                "target": worst.target,
                "via": worst.via,
                "status": worst.status,
                "at": round(worst.started, 1),
            }
            if worst
            else None
        ),
        "budget": budgets,
        "slot_gauges_seen": gauge_names,
        "slot_gauges_final": gauges,
        "rss": rss,
        "linked_outputs_rechecked": len(soak.ledger.linked_outputs),
        "harness_errors": soak.harness_errors,
        "violations": violations,
        "fault_log": [f.as_json() for f in soak.faults],
        "outcomes": [o.as_json() for o in outcomes],
    }


def print_summary(summary: dict[str, Any], log: Callable[[str], object]) -> None:
    """A readable digest of the summary (the JSON file has everything)."""
    lines = [
        "",
        f"=== soak summary (seed {summary['seed']}; replay: {summary['replay']})",
        f"time: warm-up until {summary['seconds']['warmup_end']}s, faults until {summary['seconds']['faults_end']}s, "
        f"total {summary['seconds']['total']}s",
        f"faults injected: {summary['faults_injected'] or 'none'}; disabled: {summary['fault_kinds_disabled'] or '-'}",
        f"kills by role: {summary['kills_by_role'] or '-'}; crashes (unprovoked exits): "
        f"{summary['crashes_by_role'] or 'none'}",
        f"downloads done {summary['downloads_done']}, failed {summary['downloads_failed']}: {summary['downloads']}",
    ]
    worst = summary["worst_stall"]
    if worst:
        lines.append(
            f"worst stall: {worst['seconds']}s ({worst['client']} {worst['target']} via {worst['via']}, "
            f"{worst['status']}, at t={worst['at']}s)"
        )
    budgets = summary["budget"]
    lines.append(f"origin bytes per file (budget {budgets['formula']}, terms {budgets['origin_terms']}):")
    for name, row in budgets["files"].items():
        lines.append(f"  {name}: {row['bytes']} bytes = {row['copies']} copies (budget {row['budget']})")
    lines.append(f"registry bytes per layer (terms {budgets['registry_terms']}):")
    for name, row in budgets["layers"].items():
        lines.append(f"  {name[:19]}: {row['bytes']} bytes = {row['copies']} copies (budget {row['budget']})")
    lines.append(f"slot gauges seen: {summary['slot_gauges_seen'] or 'none (no gauge named *slots*/*inflight*)'}")
    peak = max((r["peak_kib"] for r in summary["rss"].values()), default=0)
    lines.append(f"RSS: {len(summary['rss'])} incarnations checked, highest peak {peak >> 10} MiB")
    if summary["harness_errors"]:
        lines.append(f"harness errors: {summary['harness_errors']}")
    violations = summary["violations"]
    lines.append(f"violations: {len(violations)}")
    lines += [f"  - {v}" for v in violations[:40]]
    log("\n".join(lines))
