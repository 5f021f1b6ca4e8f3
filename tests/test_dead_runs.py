"""A run killed while it holds the `warehouse` pool slot does not block later runs (issue 9.7).

Real pieces: `dagster asset materialize` processes on one instance (the project's dagster.yaml,
pool limit 1), moto S3, a DuckDB file, SIGKILL. The sensor is ticked the way the daemon ticks it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg

from orchestration.maintenance.dead_runs import dead_run_sensor
from orchestration.resources import LandingZone
from tests.lakehouse import NOW, hour_key, put_object, reading

ROOT = Path(__file__).resolve().parents[1]


def _materialize(home: Path, env: dict[str, str], prefix: str, hour: Any) -> subprocess.Popen:
    config = f'{{"resources": {{"landing": {{"config": {{"bucket_prefix": "{prefix}"}}}}}}}}'
    return subprocess.Popen(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-f", "definitions.py",
         "--select", "bronze/raw", "--partition", hour_key(hour), "--config-json", config],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_killed_bronze_run_frees_the_warehouse_slot_and_its_staging(
    tmp_path: Path, s3: Any, s3_env: str, bucket_prefix: str
) -> None:
    landing = LandingZone(bucket_prefix=bucket_prefix, endpoint_url=s3_env)
    first, second = NOW - timedelta(hours=2), NOW - timedelta(hours=1)
    for n in range(150):  # enough objects that the load takes a moment to kill it in
        put_object(s3, landing.bucket("raw"), first, [reading(n, first)], node=f"n{n:03d}")
    put_object(s3, landing.bucket("raw"), second, [reading(1, second)])
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    instance = dg.DagsterInstance.from_config(str(home))

    killed = _materialize(home, env, bucket_prefix, first)

    def holding_slot() -> bool:
        return bool(instance.event_log_storage.get_concurrency_info("warehouse").claimed_slots)

    def staged() -> bool:
        staging = home / "staging_dev"
        return staging.exists() and any(staging.glob("bronze-*/*.parquet"))

    _wait(lambda: holding_slot() and staged(), 120, "the first run to hold the slot and stage")
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    (run,) = instance.get_run_records(limit=1)
    assert run.dagster_run.status == dg.DagsterRunStatus.STARTED  # what Dagster alone leaves

    waiting = _materialize(home, env, bucket_prefix, second)
    try:
        _wait(
            lambda: bool(
                instance.event_log_storage.get_concurrency_info("warehouse").pending_steps
            ),
            120,
            "the second run to queue for the slot",
        )
        time.sleep(2)
        assert waiting.poll() is None  # blocked behind the dead run's slot
        result = dead_run_sensor(dg.build_sensor_context(instance=instance))
        assert "failed 1 run(s) whose worker died" in str(result.skip_message)
        assert waiting.wait(timeout=120) == 0, waiting.stderr.read() if waiting.stderr else ""
    finally:
        if waiting.poll() is None:
            os.killpg(waiting.pid, signal.SIGKILL)
    dead = instance.get_run_by_id(run.dagster_run.run_id)
    assert dead is not None and dead.status == dg.DagsterRunStatus.FAILURE
    assert not instance.event_log_storage.get_concurrency_info("warehouse").claimed_slots
    # The next load swept what the killed one staged.
    assert not list((home / "staging_dev").glob("bronze-*"))
    again = dead_run_sensor(dg.build_sensor_context(instance=instance))
    assert "every started run has a live worker" in str(again.skip_message)
