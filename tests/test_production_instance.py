"""The production instance example (docs/production/dagster.yaml) on a real PostgreSQL: a run
and the daemon's sensor ticks are recorded there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from orchestration.demo.local_s3 import stop_process_group

ROOT = Path(__file__).resolve().parents[1]


def test_a_run_and_sensor_ticks_are_recorded_in_postgres(tmp_path: Path, lakebase_db: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(ROOT / "docs" / "production" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_POSTGRES_URL": lakebase_db}
    hour = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%d-%H:00")
    proc = subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-f", "definitions.py",
         "--select", "silver/sensor_readings", "--partition", hour],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    daemon = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-f", "definitions.py"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        ticks = 0
        while ticks == 0:
            assert daemon.poll() is None, "the daemon exited"
            assert time.monotonic() < deadline, "no sensor tick recorded"
            time.sleep(1)
            with psycopg.connect(lakebase_db) as conn:
                ticks = conn.execute("SELECT count(*) FROM job_ticks").fetchone()[0]  # type: ignore[index]
    finally:
        stop_process_group(daemon)
    with psycopg.connect(lakebase_db) as conn:
        runs = conn.execute("SELECT status FROM runs").fetchall()
        events = conn.execute(
            "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
        ).fetchone()
        pools = conn.execute("SELECT concurrency_key FROM concurrency_limits").fetchall()
    assert runs == [("SUCCESS",)] and events == (1,)
    assert ("warehouse",) in pools  # the pool's slots live in Postgres too
