"""Who sent when: each namespace's uplink bytes sampled every interval during a run (scale_bench.py --timeline).

A thread reads tx_bytes of every namespace's eth0 (bench/netns.py) every `interval` seconds; each sample costs one
`ip -j -s link show` per namespace (a few ms each), so keep it off for the figures that are compared.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from types import TracebackType

from netns import NetHost, NetnsError, tx_bytes


class UplinkTimeline:
    """Samples tx_bytes of every host from entering the block until leaving it."""

    def __init__(self, hosts: Sequence[NetHost], interval: float = 0.5) -> None:
        self.hosts = list(hosts)
        self.interval = interval
        self.samples: list[tuple[float, dict[str, int]]] = []  # seconds after the start, bytes sent so far by netns
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="uplink-timeline")
        self._start = 0.0

    def __enter__(self) -> UplinkTimeline:
        self._start = time.perf_counter()
        self._sample()
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _sample(self) -> None:
        try:
            sent = {host.netns: tx_bytes(host) for host in self.hosts}
        except NetnsError:
            return  # a namespace went away: the run is ending
        self.samples.append((time.perf_counter() - self._start, sent))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def rates(self) -> list[tuple[float, dict[str, float]]]:
        """MB/s each namespace sent between consecutive samples, stamped with the end of each interval."""
        out: list[tuple[float, dict[str, float]]] = []
        for (t0, before), (t1, after) in zip(self.samples, self.samples[1:], strict=False):
            span = max(t1 - t0, 1e-6)
            out.append((t1, {key: (after[key] - before[key]) / span / 1e6 for key in after}))
        return out


def format_rates(rates: list[tuple[float, dict[str, float]]], short: dict[str, str]) -> str:
    """One line per sample: seconds, then MB/s per namespace (short names as column heads)."""
    if not rates:
        return "  (no samples)"
    keys = list(rates[0][1])
    lines = ["  uplink MB/s  t(s) " + " ".join(f"{short.get(key, key):>6}" for key in keys)]
    for stamp, values in rates:
        lines.append(f"             {stamp:5.1f} " + " ".join(f"{values[key]:6.2f}" for key in keys))
    return "\n".join(lines)
