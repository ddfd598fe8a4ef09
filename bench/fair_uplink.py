"""A fair uplink queue: per-destination HTB classes under the uplink's rate, instead of tbf's single FIFO.

With one FIFO (tbf), a host whose uplink is full also queues the TCP ACKs of its own downloads behind its
uploads: measured here, a namespace at 50 Mbit/s uploading to 8 hosts fetched 128 MiB from a 100 Mbit/s origin
in 61.9 s instead of 11.2 s. Hosts usually send through a per-flow fair qdisc (fq_codel, fq), which this kernel
lacks; HTB with one leaf per destination address (u32 filters) gives the same effect here: every destination
gets its share of the rate and may borrow the rest, so ACKs to an idle destination leave at once (then the
same download took 11.2 s while the uploads kept the uplink full).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence

from netns import TC_BIN, NetHost, NetnsError

LEAF_QUEUE_PACKETS = "100"  # pfifo per destination: 150 kB, 24 ms at 50 Mbit/s
BURST = "64kb"


def _tc(host: NetHost, *argv: str) -> None:
    result = subprocess.run([TC_BIN, "-n", host.netns, *argv], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise NetnsError(f"tc -n {host.netns} {' '.join(argv)}: {result.stderr.strip()}")


def fair_uplinks(hosts: Sequence[NetHost]) -> None:
    """Replace each shaped host's eth0 root qdisc by HTB at its uplink rate with one class per other host."""
    for host in hosts:
        if host.uplink_mbit is None:
            continue
        rate = f"{host.uplink_mbit}mbit"
        others = _others(host, hosts)
        share = f"{max(1, host.uplink_mbit * 1000 // (len(others) + 1))}kbit"
        _tc(host, "qdisc", "del", "dev", "eth0", "root")
        _tc(host, "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb", "default", "ffff")
        _tc(
            host,
            *("class", "add", "dev", "eth0", "parent", "1:", "classid", "1:1", "htb"),
            *("rate", rate, "ceil", rate, "burst", BURST, "cburst", BURST),
        )
        leaves: list[tuple[str, NetHost | None]] = [(_leaf(index), other) for index, other in enumerate(others)]
        leaves.append(("1:ffff", None))  # anything else (ARP and the like)
        for classid, other in leaves:
            _tc(
                host,
                *("class", "add", "dev", "eth0", "parent", "1:1", "classid", classid, "htb"),
                *("rate", share, "ceil", rate, "quantum", "1514", "burst", BURST, "cburst", BURST),
            )
            _tc(host, "qdisc", "add", "dev", "eth0", "parent", classid, "pfifo", "limit", LEAF_QUEUE_PACKETS)
            if other is not None:
                _tc(
                    host,
                    *("filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip", "prio", "1", "u32"),
                    *("match", "ip", "dst", f"{other.ip}/32", "flowid", classid),
                )


def _others(host: NetHost, hosts: Sequence[NetHost]) -> list[NetHost]:
    return [other for other in hosts if other.netns != host.netns]


def _leaf(index: int) -> str:
    return f"1:{10 + index:x}"


def sent_to(host: NetHost, hosts: Sequence[NetHost]) -> dict[str, int]:
    """Bytes host sent so far to each other host (by netns), read from the byte counters of its per-destination
    classes; hosts as given to fair_uplinks."""
    argv = [TC_BIN, "-n", host.netns, "-s", "class", "show", "dev", "eth0"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise NetnsError(f"tc -n {host.netns} -s class show: {result.stderr.strip()}")
    sent = class_bytes(result.stdout)
    return {other.netns: sent.get(_leaf(index), 0) for index, other in enumerate(_others(host, hosts))}


def class_bytes(shown: str) -> dict[str, int]:
    """Bytes sent by class id, from `tc -s class show` ("class htb 1:10 parent 1:1 ...", then " Sent 123 bytes ...";
    this tc prints no JSON for classes)."""
    pattern = r"^class htb (\S+) .*\n\s*Sent (\d+) bytes"
    return {match[1]: int(match[2]) for match in re.finditer(pattern, shown, re.MULTILINE)}
