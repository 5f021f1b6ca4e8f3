"""Benchmark: the same gold build on DuckDB and on local Spark, and Databricks API calls per run.

    uv run --group databricks python -m bench.databricks            # 1 M silver rows, 3 runs
    uv run --group databricks python -m bench.databricks --tiny     # what the test suite runs

Gold: the three hourly gold tables built from one silver table (48 hours), by DuckDB from the
DuckDB SQL and by local Spark (local[2]) from its sqlglot translation; both write their result.
API calls: one hourly run and one 70-hour backfill of `gold/sensor_hourly_stats` through the
real Pipes client and SDK against the loopback stand-in, counted by route.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from orchestration.transforms.dialect import to_databricks
from orchestration.transforms.gold import GOLD_TABLES

RESULTS = Path(__file__).parent / "results"
START = datetime(2026, 11, 1, tzinfo=UTC)
HOURS = 48
TOKEN = "bench-standin-token"  # noqa: S105 (the stand-in's own)


def silver(conn: duckdb.DuckDBPyConnection, rows: int) -> None:
    """A silver table of `rows` readings over HOURS hours, 200 sensors in 4 regions."""
    conn.execute(
        f"""CREATE OR REPLACE TABLE silver_sensor_readings AS
        SELECT 'node-' || (i % 50) AS node_id,
               ['us-east-1', 'eu-west-1', 'ap-south-1', 'us-west-2'][1 + i % 4] AS region,
               'AMS_' || lpad(CAST(i % 200 AS VARCHAR), 6, '0') AS sensor_id,
               TIMESTAMPTZ '{START.isoformat()}' + to_microseconds(
                   CAST(i * ({HOURS} * 3600e6 / {rows}) AS BIGINT)) AS event_time,
               60 + (i % 37) * 0.5 AS temperature, 40 + (i % 23) * 1.0 AS humidity,
               12 + (i % 7) * 0.3 AS pressure, 1.0 + (i % 5) * 0.1 AS vibration,
               11.5 + (i % 11) * 0.1 AS voltage, CAST(i % 3 AS BIGINT) AS status_code,
               CAST(i % 97 = 0 AS BIGINT) AS anomaly_flag,
               CASE WHEN i % 97 = 0 THEN 'spike' END AS anomaly_type,
               52.3 + (i % 100) * 0.001 AS latitude, 4.9 + (i % 100) * 0.001 AS longitude,
               'raw' AS source_scenario
        FROM range({rows}) t(i)"""
    )
    conn.execute(
        "ALTER TABLE silver_sensor_readings ADD COLUMN _partition_hour TIMESTAMPTZ; "
        "UPDATE silver_sensor_readings SET _partition_hour = date_trunc('hour', event_time)"
    )


def duckdb_gold(conn: duckdb.DuckDBPyConnection) -> float:
    params = {"start": START, "end": START + timedelta(hours=HOURS)}
    started = time.perf_counter()
    for spec in GOLD_TABLES:
        conn.execute(f"CREATE OR REPLACE TABLE gold_{spec.entity} AS {spec.select}", params)
    return time.perf_counter() - started


def spark_session() -> Any:
    """Local Spark, as the stand-in runs the job (the launcher's session), in UTC."""
    from tests.databricks_standin.launcher import local_spark

    spark = local_spark()
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    return spark


def spark_gold(spark: Any, silver_path: Path, out: Path) -> float:
    params = {"start": START, "end": START + timedelta(hours=HOURS)}
    spark.read.parquet(str(silver_path)).createOrReplaceTempView("silver_sensor_readings")
    started = time.perf_counter()
    for spec in GOLD_TABLES:
        spark.sql(to_databricks(spec.select), args=params).write.mode("overwrite").parquet(
            str(out / spec.entity)
        )
    return time.perf_counter() - started


def api_calls(workdir: Path, silver_path: Path) -> dict[str, Any]:
    """Databricks API calls for one hourly run and one 70-hour backfill (one job run each)."""
    import dagster as dg
    import pyarrow.parquet as pq

    from orchestration.databricks.engine import DatabricksEngine
    from orchestration.databricks.workspace import Databricks
    from orchestration.engine import engine_fields
    from orchestration.environment import build_environment
    from orchestration.gold.assets import build_hourly_gold
    from orchestration.settings import environment_settings
    from orchestration.transforms.gold import GOLD_TABLES
    from tests.databricks_standin.local_tables import write_table
    from tests.databricks_standin.server import serve

    settings = environment_settings("databricks")
    env = build_environment(settings, partitions_start=START.strftime("%Y-%m-%d-%H:00"))
    gold = build_hourly_gold(GOLD_TABLES[0], env)
    out: dict[str, Any] = {}
    with serve(workdir / "standin", TOKEN) as workspace:
        silver = pq.read_table(silver_path / "part-0.parquet")  # as the job leaves it: Delta
        write_table(workspace.tables, "prod", "silver_sensor_readings", silver)
        resource = Databricks(host=workspace.host, token=TOKEN, poll_interval_seconds=1,
                              message_interval_seconds=1, environment=settings.name)  # fmt: skip
        engine = DatabricksEngine(**engine_fields(settings))
        with dg.instance_for_test() as instance:
            for label, hours in (("hourly_run", 1), ("backfill_70h", 70)):
                workspace.calls.clear()
                last = START + timedelta(hours=hours - 1)
                tags = {
                    "dagster/asset_partition_range_start": START.strftime("%Y-%m-%d-%H:%M"),
                    "dagster/asset_partition_range_end": last.strftime("%Y-%m-%d-%H:%M"),
                }
                runs_before = len(workspace.runs)
                resources = {"engine": engine, "databricks": resource}
                dg.materialize([gold], resources=resources, instance=instance, tags=tags)
                out[label] = {
                    "hours": hours,
                    "job_runs": len(workspace.runs) - runs_before,
                    "api_calls": sum(workspace.calls.values()),
                    "by_route": dict(sorted(workspace.calls.items())),
                }
    return out


def spread(values: list[float]) -> str:
    return f"min {min(values):.2f} / median {statistics.median(values):.2f} / max {max(values):.2f}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="20k rows, one run")
    args = parser.parse_args(argv)
    if args.tiny:
        args.rows, args.repeats = 20_000, 1
    with tempfile.TemporaryDirectory(prefix="bench-databricks-") as tmp:
        workdir = Path(tmp)
        silver_path = workdir / "silver"
        with duckdb.connect(str(workdir / "bench.duckdb")) as conn:
            silver(conn, args.rows)
            silver_path.mkdir()
            target = silver_path / "part-0.parquet"
            conn.execute(f"COPY silver_sensor_readings TO '{target}' (FORMAT parquet)")
            duck = [duckdb_gold(conn) for _ in range(args.repeats)]
            gold_rows = {
                s.entity: conn.execute(f"SELECT count(*) FROM gold_{s.entity}").fetchone()[0]  # type: ignore[index]
                for s in GOLD_TABLES
            }
        started = time.perf_counter()
        spark = spark_session()
        session_seconds = time.perf_counter() - started
        try:
            sparks = [
                spark_gold(spark, silver_path, workdir / f"spark-{i}") for i in range(args.repeats)
            ]
            spark_rows = {
                s.entity: spark.read.parquet(str(workdir / "spark-0" / s.entity)).count()
                for s in GOLD_TABLES
            }
        finally:
            spark.stop()
        if spark_rows != gold_rows:
            raise SystemExit(f"gold rows differ: DuckDB {gold_rows}, Spark {spark_rows}")
        calls = api_calls(workdir, silver_path)
    results = {
        "rows": args.rows,
        "duckdb_gold_seconds": duck,
        "spark_gold_seconds": sparks,
        "spark_session_start_seconds": session_seconds,
        "spark_vs_duckdb": statistics.median(sparks) / statistics.median(duck),
        "gold_rows": gold_rows,
        "api_calls": calls,
    }
    print(f"gold build from {args.rows:,} silver rows ({HOURS} hours), {args.repeats} run(s)")
    print(f"  DuckDB          : {spread(duck)} s")
    print(f"  local Spark     : {spread(sparks)} s  (+ {session_seconds:.1f} s session start)")
    print(f"  Spark / DuckDB  : {results['spark_vs_duckdb']:.1f}x (median)")
    for label, figures in calls.items():
        print(f"  {label:<13}: {figures['job_runs']} job run(s), {figures['api_calls']} API calls")
    if not args.tiny:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"databricks_{args.rows}.json").write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
