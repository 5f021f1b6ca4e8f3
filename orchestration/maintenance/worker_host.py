"""Where a run's worker process runs, recorded as run tags, and whether that is this machine.

A pid only means something on the machine, boot and pid namespace that issued it. Dagster
records the worker's pid (in RUN_START) but not where it ran, so the project's executor tags
each run with this identity before any step starts, and `dead_run_sensor` judges only runs
whose pid it can check here.
"""

from __future__ import annotations

import hashlib
import socket
from enum import Enum
from pathlib import Path

HOST_TAG = "lakehouse/worker_host"
MACHINE_TAG = "lakehouse/worker_machine"
BOOT_TAG = "lakehouse/worker_boot_id"
PID_NAMESPACE_TAG = "lakehouse/worker_pid_namespace"
# The run the identity was recorded for: a retry inherits its parent's tags, and until its own
# worker records them, they describe the parent's worker, not the retry's.
RUN_TAG = "lakehouse/worker_run"

_MACHINE_ID_FILES = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))
_BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")


class WorkerPlace(Enum):
    """How a run's recorded worker identity relates to this process's machine."""

    HERE = "here"  # same machine, boot and pid namespace: its pid can be checked
    BEFORE_REBOOT = "before reboot"  # this machine, an earlier boot: the worker is gone
    ELSEWHERE = "elsewhere"  # another machine (or container): its pid means nothing here
    UNKNOWN = "unknown"  # not recorded, or not enough to tell


def _first_line(*paths: Path) -> str | None:
    for path in paths:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text:
            return text
    return None


def _machine() -> str | None:
    # systemd asks that the machine id itself not leave the machine: keep an app-specific hash.
    machine_id = _first_line(*_MACHINE_ID_FILES)
    if machine_id is None:
        return None
    return hashlib.sha256(f"lakehouse-worker:{machine_id}".encode()).hexdigest()[:16]


def _pid_namespace() -> str | None:
    try:
        return str(Path("/proc/self/ns/pid").readlink())
    except OSError:
        return None


def worker_identity(run_id: str | None = None) -> dict[str, str]:
    """This process's machine as tags (of run `run_id`, when given); the parts this platform
    cannot read are left out."""
    found = {
        RUN_TAG: run_id,
        HOST_TAG: socket.gethostname(),
        MACHINE_TAG: _machine(),
        BOOT_TAG: _first_line(_BOOT_ID_FILE),
        PID_NAMESPACE_TAG: _pid_namespace(),
    }
    return {tag: value for tag, value in found.items() if value}


def worker_place(run_id: str, run_tags: dict[str, str], here: dict[str, str]) -> WorkerPlace:
    """Where run `run_id` (tags `run_tags`) had its worker, seen from identity `here`."""

    def known_and_different(tag: str) -> bool:
        return bool(run_tags.get(tag)) and bool(here.get(tag)) and run_tags[tag] != here[tag]

    if not run_tags.get(HOST_TAG) or run_tags.get(RUN_TAG) != run_id:
        return WorkerPlace.UNKNOWN  # not recorded, or recorded for the run it retries
    if known_and_different(HOST_TAG) or known_and_different(MACHINE_TAG):
        return WorkerPlace.ELSEWHERE
    if known_and_different(BOOT_TAG):
        # A namesake machine also has another boot id: only the machine id tells a reboot.
        same_machine = bool(run_tags.get(MACHINE_TAG)) and bool(here.get(MACHINE_TAG))
        return WorkerPlace.BEFORE_REBOOT if same_machine else WorkerPlace.UNKNOWN
    if known_and_different(PID_NAMESPACE_TAG):
        return WorkerPlace.ELSEWHERE  # a container beside this one: its pids are not ours
    return WorkerPlace.HERE
