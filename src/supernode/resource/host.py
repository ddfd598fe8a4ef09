"""A host: one dfdaemon (a seed peer or not); its upload capacity and rate."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from dfcommon.pieces import MIB

# An upload slot serves one DownloadPieces call, which carries a few pieces of a peer's window.
PIECES_PER_SLOT = 4
# A parent gets no more pieces at once than its uplink sends in this long (at the rate measured so far): a
# parent that sends k pieces at once sends each at 1/k of its uplink, so on a slow link every child waits k
# times longer for its piece, and has nothing to pass on meanwhile. Measured on shaped links (50 Mbit/s hosts,
# see bench/swarm_sim.py and bench/scale_bench.py): 8 hosts took 4x the Kumar-Ross bound with a parent sending
# up to 32 pieces at once, and 1.5x with about one. With the rate measured from the children's requests on (below),
# 0.15 s: 8 hosts on 200 Mbit/s took 4.24-4.31 s against 4.41-4.58 s with 0.3 s, the rest unchanged (bench/README.md).
UPLOAD_BUDGET_S = 0.15
# Pieces a host may send at once before any of its uploads finished (the rate is not known yet).
INITIAL_PIECES = 2
# The upload rate is sampled once the host has been sending for this long, and smoothed over samples. Sending time
# is the union of its pieces' sending times, each from when its child asked for it (PieceResult.duration_ms; the
# assignment when not reported) to its report: the time an assignment and a report take on their way is not part
# of it, or the rate would settle below the link by their share of the budget.
RATE_SAMPLE_S = 0.5
RATE_SMOOTHING = 0.5  # weight of the newest sample
SAMPLE_SPANS = 64  # a sample also ends at this many disjoint spans of sending (many short pieces, idle between)


@dataclass(eq=False)
class Host:
    """A registered host; `inflight` counts pieces assigned with one of its peers as parent (bytes in
    `inflight_bytes`), and `rate` is the upload rate its children saw (bytes/s, 0 until measured)."""

    host_id: str
    hostname: str
    ip: str
    port: int
    upload_slots: int
    location: str
    last_seen: float
    seed_peer: bool = False  # a dfdaemon in the seed role (HostInfo.seed): reads the origin first, serves last
    beat_every: float = 0.0  # the heartbeat interval (s) last handed to it when longer than everyone's (idle), else 0
    inflight: int = 0
    inflight_bytes: int = 0
    peer_ids: set[str] = field(default_factory=set)
    # A child could not reach it: not chosen as a parent until it heart-beats again (a dead host
    # would otherwise keep drawing assignments until it misses three heartbeats).
    unreachable: bool = False
    rate: float = 0.0
    piece_bytes: int = MIB  # size of the last piece assigned from it: budgets are counted in such pieces
    _sending: list[list[float]] = field(default_factory=list)  # the current sample's sending time: disjoint spans
    _busy: float = 0.0  # their total length
    _sent: int = 0  # bytes delivered in the current sample
    _sampled_until: float = 0.0  # the end of the last sample: sending time before it was counted there
    _free: int = field(init=False, default=0)  # free_slots, computed when what it depends on changes
    # Pieces this host may be serving at once by its upload slots (fixed: a host that registers again is a new Host).
    capacity: int = field(init=False, default=0)

    @property
    def address(self) -> str:
        """Where its peers serve pieces, "ip:port" (stays the same when the host registers again)."""
        return f"{self.ip}:{self.port}"

    @property
    def free_slots(self) -> int:
        """Pieces it can take on now: within its slots and within its upload budget. Kept up to date by started and
        ended (the only changes to what it depends on): a scheduling choice reads it for every holder it ranks, some
        ten times per piece report, and computing it each time was a tenth of a hot supernode's CPU."""
        return self._free

    def __post_init__(self) -> None:
        self.capacity = self.upload_slots * PIECES_PER_SLOT
        self._free = self._free_now()

    def _free_now(self) -> int:
        free = self.capacity - self.inflight
        if free <= 0:
            return 0
        if self.rate <= 0:
            return max(0, min(free, INITIAL_PIECES - self.inflight))
        budget = self.rate * UPLOAD_BUDGET_S - self.inflight_bytes
        if budget <= 0:
            return 1 if self.inflight == 0 else 0
        return min(free, max(1, math.ceil(budget / max(1, self.piece_bytes) - 1e-9)))

    def started(self, size: int) -> None:
        """A piece of size bytes was assigned with this host as parent."""
        self.inflight += 1
        self.inflight_bytes += size
        self.piece_bytes = size
        self._free = self._free_now()

    def ended(self, size: int, delivered: bool, since: float, now: float) -> None:
        """That assignment ended: delivered, or failed / given back; the host was sending it from since to now."""
        self.inflight = max(0, self.inflight - 1)
        self.inflight_bytes = max(0, self.inflight_bytes - size)
        if delivered:
            self._sent += size
        self._busy += _add_span(self._sending, max(since, self._sampled_until), now)
        busy = self._busy
        if busy > 0 and (
            busy >= RATE_SAMPLE_S or len(self._sending) >= SAMPLE_SPANS or (self.inflight == 0 and self._sent)
        ):
            sample = self._sent / busy
            self.rate = sample if self.rate <= 0 else RATE_SMOOTHING * sample + (1 - RATE_SMOOTHING) * self.rate
            self._sent = 0
            self._sampled_until = max(now, self._sampled_until)
            self._sending.clear()
            self._busy = 0.0
        self._free = self._free_now()


def _add_span(spans: list[list[float]], start: float, end: float) -> float:
    """Add [start, end] to spans (sorted, disjoint, merged in place); returns the length it added to them. Most spans
    end after those before them (a host's pieces end about in the order they began): those take no pass over all."""
    if end <= start:
        return 0.0
    if not spans or start > spans[-1][1]:
        spans.append([start, end])
        return end - start
    last = spans[-1]
    if start >= last[0]:
        added = max(0.0, end - last[1])
        last[1] += added
        return added
    before = sum(b - a for a, b in spans)
    merged = [start, end]
    kept = []
    for span in spans:
        if span[1] < merged[0] or span[0] > merged[1]:
            kept.append(span)
        else:
            merged = [min(span[0], merged[0]), max(span[1], merged[1])]
    kept.append(merged)
    kept.sort()
    spans[:] = kept
    return sum(b - a for a, b in spans) - before
