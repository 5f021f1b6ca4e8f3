"""`lakehouse-live`, as a user runs it: S3, PostgreSQL, the Dagster webserver and daemon start;
the simulated fleet uploads, sensors and automation carry the data through bronze, silver, gold
and into Postgres on their own; Ctrl-C stops every process it started, and their data stays."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import psutil
import pytest

from orchestration.demo.local_s3 import free_port

ROOT = Path(__file__).parent.parent


def _materializations(home: Path, key: str) -> int:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.fetch_materializations(dg.AssetKey(key.split("/")), limit=100).records
        return len(records)


@pytest.mark.timeout(480)
def test_live_platform_moves_data_on_its_own_and_stops_cleanly(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LAKEHOUSE_"))}
    port = free_port()
    log = tmp_path / "live.log"  # a file, not a pipe: a full pipe would stall every process
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("lakehouse-live")), "--port", str(port)],
            cwd=tmp_path, env={**env, "DAGSTER_HOME": str(home)},
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    started = psutil.Process(proc.pid)
    try:
        deadline = time.monotonic() + 400  # runs one at a time; sensors 60 s, automation 30 s
        wanted = ("demo/edge_fleet", "bronze/raw", "silver/sensor_readings",
                  "gold/sensor_hourly_stats", "lakebase/gold_sensor_hourly_stats")  # fmt: skip
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"lakehouse-live exited: {log.read_text()[-3000:]}")
            if (home / "history").exists() and all(_materializations(home, k) for k in wanted):
                break
            time.sleep(5)
        else:
            raise AssertionError({k: _materializations(home, k) for k in wanted})
        children = started.children(recursive=True)
        assert len(children) >= 4  # moto, postgres, dagster dev and its webserver/daemon
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:  # a failed wait: stop it the way a user would, then for sure
            leftovers = started.children(recursive=True)
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
            for child in leftovers:
                if child.is_running():
                    child.kill()
    output = log.read_text()
    assert proc.returncode == 0, output[-3000:]
    assert "Dagster UI: http://127.0.0.1:" in output
    _, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, [p.cmdline()[:3] for p in alive]  # every process it started has stopped
    # What the next start reuses stays: the warehouse, the Postgres data, the instance.
    assert (home / "warehouse_live.duckdb").exists()
    assert (home / "lakebase_pg" / "PG_VERSION").exists()
    assert _materializations(home, "silver/sensor_readings") >= 1
