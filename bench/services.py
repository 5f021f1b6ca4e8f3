"""Loopback services the benchmarks start for themselves."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import IO, NamedTuple

from orchestration.demo.local_s3 import local_s3_server as moto_s3_server

__all__ = ["Measured", "moto_s3_server", "run_measured", "s3_env"]


def s3_env(endpoint: str) -> dict[str, str]:
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench-secret",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL": endpoint,
    }


def _high_water_mb(pid: int) -> float | None:
    """VmHWM of a running process: its own peak RSS since exec, in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Measured(NamedTuple):
    """One finished process: wall seconds, its own peak RSS (MB), CPU seconds (user + system)."""

    seconds: float
    peak_rss_mb: float
    cpu_seconds: float
    stderr: str


def run_measured(
    command: list[str], env: dict[str, str], stdout: IO[str] | None = None
) -> Measured:
    """Run a command to completion and measure it.

    The peak is the process's own high-water mark (VmHWM, polled every 10 ms; it only grows),
    not wait4's ru_maxrss: that one keeps the RSS the child had before exec, which is the
    parent's whole resident set (a benchmark process with DuckDB loaded, say). CPU seconds come
    from wait4 (all the process's threads).
    """
    started = time.perf_counter()
    proc = subprocess.Popen(
        command, env=env, stdout=stdout or subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    peak: float | None = None
    while True:
        peak = max(peak or 0.0, _high_water_mb(proc.pid) or 0.0) or peak
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({proc.returncode}): {err[-2000:]}")
    peak_mb = peak if peak is not None else float("nan")
    return Measured(elapsed, peak_mb, usage.ru_utime + usage.ru_stime, err)
