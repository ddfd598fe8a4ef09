"""The byte counters bench/zones_bench.py reads from each host's per-destination HTB classes (fair_uplink)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

from fair_uplink import class_bytes

SHOWN = """class htb 1:10 parent 1:1 prio 0 rate 6250Kbit ceil 50Mbit burst 64Kb cburst 64Kb
 Sent 33620184 bytes 22412 pkt (dropped 0, overlimits 0 requeues 0)
 backlog 0b 0p requeues 0
 lended: 0 borrowed: 0 giants: 0

class htb 1:1 root rate 50Mbit ceil 50Mbit burst 64Kb cburst 64Kb
 Sent 67240368 bytes 44824 pkt (dropped 0, overlimits 0 requeues 0)
 backlog 0b 0p requeues 0

class htb 1:ffff parent 1:1 prio 0 rate 6250Kbit ceil 50Mbit burst 64Kb cburst 64Kb
 Sent 0 bytes 0 pkt (dropped 0, overlimits 0 requeues 0)
"""


def test_bytes_by_class_from_tc_show() -> None:
    assert class_bytes(SHOWN) == {"1:10": 33620184, "1:1": 67240368, "1:ffff": 0}
