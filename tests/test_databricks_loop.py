"""The Databricks engine in the real loop: landing sensor ticks, automation evaluations and the
runs they request (tests/daemon.py), each asset's compute a Databricks job run on the loopback
stand-in (local PySpark), Lakebase synced tables filled through the API into a real
PostgreSQL; and a Dagster run stopped mid-job cancels its Databricks run.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import psycopg
import pytest

from orchestration.databricks.workspace import Databricks
from orchestration.defs import build_definitions
from orchestration.resources import LandingZone
from orchestration.warehouse import Warehouse
from tests.daemon import DaemonLoop
from tests.databricks_standin.local_tables import read_table
from tests.databricks_standin.server import Workspace, serve
from tests.lakehouse import NOW, hour_key, put_object, reading

TOKEN = "standin-loop-token"  # the stand-in's own, for this test only
ROOT = Path(__file__).parent.parent


@pytest.fixture
def standin(tmp_path: Path, s3_env: str, postgres_dsn: str,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:  # fmt: skip
    monkeypatch.setenv("LAKEHOUSE_ENV", "databricks")
    task_env = {k: os.environ[k] for k in os.environ if k.startswith("AWS_")}
    with serve(tmp_path / "workspace", TOKEN, task_env, postgres_dsn) as workspace:
        yield workspace


# Several local Spark jobs: minutes on two busy cores (the default 300 s guards hangs).
@pytest.mark.timeout(900)
def test_sensor_automation_and_runs_drive_the_databricks_engine_to_postgres(
    s3: Any, s3_env: str, bucket_prefix: str, tmp_path: Path, instance: dg.DagsterInstance,
    standin: Workspace, postgres_dsn: str,
) -> None:  # fmt: skip
    landing = LandingZone(bucket_prefix=bucket_prefix, endpoint_url=s3_env)
    databricks = Databricks(host=standin.host, token=TOKEN, message_interval_seconds=0.5,
                            poll_interval_seconds=0.5)  # fmt: skip
    defs = build_definitions({
        "landing": landing,
        "databricks": databricks,
        "warehouse": Warehouse(database_path=str(tmp_path / "unused.duckdb")),
    })  # fmt: skip
    loop = DaemonLoop(defs, instance, landing)
    rows = [reading(i, NOW) for i in range(1, 31)]
    rows[0]["voltage"] = 99.0  # dropped by voltage_in_range
    put_object(s3, landing.bucket("raw"), NOW, rows)
    loop.run_until_quiet()

    assert all(ok for _, _, ok in loop.runs), [r for r in loop.runs if not r[2]]
    for key in ("bronze/raw", "silver/sensor_readings", "gold/sensor_hourly_stats",
                "gold/anomalies"):  # fmt: skip
        assert loop.materializations(key, hour_key(NOW)) == 1, key
    assert loop.materializations("lakebase/gold_sensor_hourly_stats") == 1
    # One Databricks job run per asset run, every one of them successful.
    assert all(r.result == "SUCCESS" for r in standin.runs.values())
    silver = pl.from_arrow(read_table(standin.tables, "prod", "silver_sensor_readings"))
    assert silver.height == 29
    dsn = postgres_dsn.replace("/postgres?", "/lakebase?")
    with psycopg.connect(dsn) as conn:
        synced = conn.execute("SELECT sum(readings) FROM prod.gold_sensor_hourly_stats").fetchone()
    assert synced == (29,)


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def unanswered_s3() -> Iterator[str]:
    """An S3 endpoint that takes connections and never answers: a job reading from it waits
    until it is canceled. Its URL."""
    with socket.create_server(("127.0.0.1", 0)) as server:  # listens, never accepts
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


@pytest.mark.parametrize("phase", ["submitting", "polling", "reading_messages"])
def test_stopping_a_dagster_run_cancels_its_databricks_run(
    phase: str, s3: Any, s3_env: str, bucket_prefix: str, tmp_path: Path, unanswered_s3: str
) -> None:
    """Ctrl-C of `dagster asset materialize` (what terminating the run from the UI sends)
    cancels the Databricks run whatever the step is doing: waiting for the submit's reply (the
    run has started; it is found again by its idempotency token), polling the run, or reading
    the job's Pipes messages."""
    landing = LandingZone(bucket_prefix=bucket_prefix, endpoint_url=s3_env)
    put_object(s3, landing.bucket("raw"), NOW, [reading(i, NOW) for i in range(1, 11)])
    # Dagster lists the landing objects on the real endpoint; the Databricks job downloads them
    # from one that never answers, so it cannot finish before the cancel arrives (a 10-row job
    # left to run can beat a Ctrl-C on a loaded machine, and end SUCCESS).
    task_env = {**{k: os.environ[k] for k in os.environ if k.startswith("AWS_")},
                "AWS_ENDPOINT_URL": unanswered_s3}  # fmt: skip
    home = tmp_path / "home"
    home.mkdir()
    config = ("resources:\n  landing:\n    config:\n      bucket_prefix: "
              f"{bucket_prefix}\n")  # fmt: skip
    (tmp_path / "run.yaml").write_text(config)
    with serve(tmp_path / "workspace", TOKEN, task_env) as standin:
        held = threading.Event()
        if phase == "submitting":
            standin.hold_submit_reply = held  # the run starts; its id never reaches Dagster
        ready = {
            "submitting": lambda: _running(standin),
            "polling": lambda: (
                _running(standin) and standin.calls["GET /api/2.2/jobs/runs/get"] > 0
            ),
            "reading_messages": lambda: (
                _running(standin)  # a message chunk was read
                and any(re.search(r"/\d+\.json$", path) for path in standin.files_read)
            ),
        }[phase]
        env = {
            **os.environ, "DAGSTER_HOME": str(home), "DATABRICKS_HOST": standin.host,
            "DATABRICKS_TOKEN": TOKEN, "LAKEHOUSE_ENV": "databricks",
            "LAKEHOUSE_BUCKET_PREFIX": bucket_prefix,
        }  # fmt: skip
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster")), "asset", "materialize", "-f",
             "definitions.py", "--select", "bronze/raw", "--partition", hour_key(NOW),
             "-c", str(tmp_path / "run.yaml")],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            _wait_for(ready, 120, f"the step to be {phase}")
            if phase == "submitting":
                assert standin.calls["GET /api/2.2/jobs/runs/get"] == 0  # no run id yet
            proc.send_signal(signal.SIGINT)  # Ctrl-C, or the run being terminated from the UI
            output, _ = proc.communicate(timeout=120)
        finally:
            held.set()
            if proc.poll() is None:
                proc.kill()
        (run,) = standin.runs.values()  # the token found the run: no second run started
        _wait_for(lambda: run.ended_at is not None, 60, "the Databricks run to end")
    assert run.result == "CANCELED", output[-3000:]
    assert run.process is not None
    assert run.process.returncode == -signal.SIGKILL  # killed by the cancel: nothing left
    assert proc.returncode != 0
    assert "canceling Databricks job" in output


def _running(standin: Workspace) -> bool:
    return any(r.state == "RUNNING" and r.process for r in standin.runs.values())
