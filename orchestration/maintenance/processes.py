"""Is a local process still the one we mean: alive, and not a newer process reusing its pid."""

from __future__ import annotations

import os
from pathlib import Path


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def started_at(pid: int) -> float | None:
    """When process `pid` started (epoch seconds), where /proc tells; None otherwise."""
    boot = _boot_time()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if boot is None:
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def is_alive(pid: int, started_before: float | None = None) -> bool:
    """True while `pid` runs (not a zombie) and, when given, started before that time (else
    the pid was reused by a later process and the one we mean is gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    if state == "Z":
        return False
    began = started_at(pid)
    # /proc's start time is in clock ticks since boot: allow a second of rounding.
    return started_before is None or began is None or began <= started_before + 1.0
