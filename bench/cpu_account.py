"""CPU seconds spent during a timed run, by program, read from /proc (Linux)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")

# Programs worth a column, by the start of their process name (comm is at most 15 characters).
GROUPS = {
    "supernode": ("supernode",),
    "dfdaemon": ("dfdaemon",),
    "registry": ("docker-registry", "registry"),
    "docker": ("dockerd", "containerd", "docker", "unpigz", "gzip"),
}


def _group(comm: str, cmdline: bytes) -> str:
    argv = cmdline.split(b"\0")
    # Python entry points run as "python .../supernode ..."; the script name says which program it is.
    if comm.startswith("python") and len(argv) > 1:
        comm = os.path.basename(argv[1].decode(errors="replace"))
    for group, prefixes in GROUPS.items():
        if comm.startswith(prefixes):
            return group
    return "other"


def _process_times() -> dict[int, tuple[str, float]]:
    """pid -> (group, user+system CPU seconds of the process and its waited-for children)."""
    times: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        # fields[11..14] = utime, stime, cutime, cstime (stat fields 14-17)
        ticks = sum(int(value) for value in fields[11:15])
        times[int(entry.name)] = (_group(comm, cmdline), ticks / TICKS)
    return times


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one running process so far (its own, without its children's)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _machine_busy() -> float:
    """CPU seconds all cores spent outside idle and iowait since boot."""
    with open("/proc/stat") as stat:
        values = [int(value) for value in stat.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / TICKS


@dataclass
class CpuSnapshot:
    """Per-process CPU times and the machine's busy time at one moment."""

    processes: dict[int, tuple[str, float]] = field(default_factory=_process_times)
    busy: float = field(default_factory=_machine_busy)

    def since(self, earlier: CpuSnapshot) -> dict[str, float]:
        """CPU seconds by group between earlier and this snapshot, plus "machine" (every core, every process).

        A process that started and exited in between counts only through its parent's waited-for children
        times, or else only in "machine".
        """
        spent: dict[str, float] = dict.fromkeys(GROUPS, 0.0)
        spent["other"] = 0.0
        for pid, (group, seconds) in self.processes.items():
            before = earlier.processes.get(pid)
            base = before[1] if before is not None and before[0] == group else 0.0
            spent[group] += max(0.0, seconds - base)
        spent["machine"] = self.busy - earlier.busy
        return spent
