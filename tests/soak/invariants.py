"""Invariants watched throughout: processes alive unless the driver killed them, RSS bounded, slot gauges at 0
once idle, origin bytes per file within budget. Everything is read from /proc and /metrics only."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from .cluster import Cluster, Service
from .workload import Ledger

SLOT_WORDS = ("slots", "inflight", "in_flight")
# Gauges that hold a configured size, not a count in use: never expected to return to 0.
CAPACITY_SUFFIXES = ("_capacity", "_limit", "_max", "_configured")
RSS_FACTOR, RSS_MARGIN_KIB = 2.0, 64 * 1024
RSS_SETTLE_S = 20.0  # an incarnation's baseline RSS is taken no earlier than this after its start


def rss_kib(pid: int) -> int | None:
    """VmRSS of pid in KiB from /proc, None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def slot_gauges(metrics_text: str) -> dict[str, float]:
    """Every gauge series whose name speaks of slots or in-flight work (not a capacity), as name{labels} → value."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        name = family.name.lower()
        if family.type != "gauge" or not any(word in name for word in SLOT_WORDS):
            continue
        if name.endswith(CAPACITY_SUFFIXES):
            continue
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}"] = sample.value
    return found


def scrape(service: Service, timeout: float = 3.0) -> str | None:
    """The /metrics text of service, None when it does not answer."""
    url = service.metrics_url
    if url is None or service.pid is None:
        return None
    try:
        response = httpx.get(url, timeout=timeout, trust_env=False)
    except httpx.HTTPError:
        return None
    return response.text if response.status_code == 200 else None


@dataclass
class Watcher:
    """Samples RSS of every process, notices unexpected deaths (and restarts them), remembers slot gauge names."""

    cluster: Cluster
    ledger: Ledger
    interval: float = 2.0
    rss: dict[tuple[str, int], list[tuple[float, int]]] = field(default_factory=dict)
    started_at: dict[tuple[str, int], float] = field(default_factory=dict)
    gauge_names: set[str] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)
    crashes: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Sample in a background thread until stop()."""
        self._thread = threading.Thread(target=self._loop, name="soak-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        tick = 0
        while not self._stop.wait(self.interval):
            tick += 1
            self.sample(scrape_metrics=tick % 3 == 0)

    def sample(self, scrape_metrics: bool = False) -> None:
        """One round: RSS of each live process, deaths the driver did not cause, slot gauge names."""
        now = self.ledger.now()
        for service in list(self.cluster.services.values()):
            with service.lock:
                proc = service.proc
                if proc is None or service.down_since is not None:
                    continue
                key = (service.role, service.incarnation)
                self.started_at.setdefault(key, now)
                if not proc.alive():
                    self._crashed(service)
                    continue
                value = rss_kib(proc.pid)
                if value is not None:
                    self.rss.setdefault(key, []).append((now, value))
            if scrape_metrics and (text := scrape(service)) is not None:
                self.gauge_names.update(name.split("{")[0] for name in slot_gauges(text))

    def _crashed(self, service: Service) -> None:
        proc = service.proc
        assert proc is not None
        self.crashes[service.role] += 1
        self.violations.append(
            f"t={self.ledger.now():.1f}s {service.role} exited by itself (status {proc.popen.returncode}); "
            f"log tail:\n{proc.tail(25)}"
        )
        try:
            service.start()
        except Exception as exc:
            self.violations.append(f"{service.role} could not be restarted after its crash: {str(exc)[-300:]}")

    def rss_report(self, warmup_end: float) -> tuple[dict[str, dict[str, int]], list[str]]:
        """Per incarnation: baseline (after warm-up and settling) and final RSS in KiB; and the violations."""
        report: dict[str, dict[str, int]] = {}
        problems: list[str] = []
        for (role, incarnation), samples in sorted(self.rss.items()):
            born = self.started_at.get((role, incarnation), 0.0)
            settled = [kib for t, kib in samples if t >= max(warmup_end, born + RSS_SETTLE_S)]
            if len(settled) < 2:
                continue
            baseline, final, peak = settled[0], settled[-1], max(settled)
            report[f"{role}#{incarnation}"] = {"baseline_kib": baseline, "final_kib": final, "peak_kib": peak}
            if final > RSS_FACTOR * baseline + RSS_MARGIN_KIB:
                problems.append(
                    f"{role} (incarnation {incarnation}) RSS grew from {baseline >> 10} MiB to {final >> 10} MiB "
                    f"(limit {RSS_FACTOR:g}x + {RSS_MARGIN_KIB >> 10} MiB)"
                )
        return report, problems


def wait_slots_idle(services: Iterable[Service], timeout: float) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Poll /metrics until every slot gauge is 0 or timeout; (last values per role, violations)."""
    services = list(services)
    deadline = time.monotonic() + timeout
    while True:
        values: dict[str, dict[str, float]] = {}
        for service in services:
            text = scrape(service)
            values[service.role] = slot_gauges(text) if text is not None else {}
        busy = [f"{role} {name}={value:g}" for role, gauges in values.items() for name, value in gauges.items()
                if value != 0]  # fmt: skip
        if not busy or time.monotonic() >= deadline:
            return values, [f"slot gauge not back to 0 after {timeout:.0f}s idle: {b}" for b in busy]
        time.sleep(1.0)
