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


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), where /proc is."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _started_at(fields: list[str]) -> float | None:
    """When the process started (epoch seconds): boot time plus its start in clock ticks."""
    boot = _boot_time()
    return None if boot is None else boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def is_alive(pid: int, started_before: float | None = None) -> bool:
    """True while `pid` runs (not a zombie) and, when given, started before that time (else
    the pid was reused by a later process and the one we mean is gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    fields = _stat(pid)
    if fields is None:
        return True
    if fields[0] == "Z":
        return False
    if started_before is None:
        return True
    began = _started_at(fields)
    # /proc's start time is in clock ticks since boot: allow a second of rounding.
    return began is None or began <= started_before + 1.0
