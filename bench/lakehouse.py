"""Benchmark: loading landing Parquet into the warehouse, and sensor tick time vs bucket size.

    uv run python -m bench.lakehouse            # 2 M rows in >= 200 objects; ticks at 1k/10k/100k
    uv run python -m bench.lakehouse --tiny     # seconds; what the test suite runs

Loads, in one run and from the same objects in the same loopback S3:
  - the bronze load: `load_bronze`, the work of `bronze/raw` for every hour (stage and verify
    each object against its sidecar, one DuckDB scan, lineage, manifest, schema version);
  - the same through Dagster: `bronze/raw` materialized for every hour in one single-run
    backfill, which adds Dagster's own events (a planned and a materialization event per hour);
  - DuckDB `read_parquet` over httpfs straight into a table (the ceiling);
  - dlt's filesystem source into DuckDB (what users would otherwise pick), on a subset of the
    objects because it is slow, reported as a rate.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
import duckdb

from bench.edge_upload import CACHE, database, fresh_copy, remove_database
from bench.services import moto_s3_server, s3_env
from edge_agent.contract import partition_hour
from orchestration.bronze.admission import LandingLimits
from orchestration.bronze.assets import build_bronze_asset
from orchestration.bronze.discovery import LandingCursor, LandingDiscovery
from orchestration.bronze.loader import load_bronze
from orchestration.bronze.request import bronze_request
from orchestration.bronze.targets import PartitionTarget
from orchestration.engine import engine_fields
from orchestration.engines.duckdb_engine import DuckDBEngine
from orchestration.environment import build_environment
from orchestration.lakebase.postgres import Lakebase
from orchestration.landing.objects import hour_of_key
from orchestration.resources import LandingZone
from orchestration.settings import environment_settings
from orchestration.warehouse import Warehouse

BUCKET = "edge-databricks-raw-us-east-1"


def upload_with_agent(rows: int, batch_rows: int, env: dict[str, str], workdir: Path) -> None:
    db = fresh_copy(database(rows, workdir), workdir / "lakehouse_bench_node.db")
    agent = Path(sys.executable).with_name("edge-agent")
    subprocess.run(
        [str(agent), "-q", "upload", "--once", "--db", str(db), "--node-id", "bench",
         "--batch-rows", str(batch_rows)],
        env=env, check=True,
    )  # fmt: skip
    remove_database(db)


def data_keys(client: Any) -> list[str]:
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".parquet")]
    return [k for k in keys if hour_of_key(k)]


def bronze_load(endpoint: str, hours: list[str], workdir: Path) -> tuple[float, int]:
    """`load_bronze` for every hour in one transaction, as the asset calls it."""
    path = workdir / "bench_bronze_load.duckdb"
    path.unlink(missing_ok=True)
    landing = LandingZone(endpoint_url=endpoint)
    warehouse = Warehouse(database_path=str(path))
    targets = [
        PartitionTarget(h, partition_hour(h), landing.bucket("raw")) for h in hours
    ]  # fmt: skip
    with warehouse.connect() as conn:
        started = time.perf_counter()
        request = bronze_request(
            scenario="raw", client=landing.client(), targets=targets, mode="addNewColumns",
            run_id="bench", limits=LandingLimits(), max_files=1_000_000, incomplete_before=None,
        )  # fmt: skip
        load = load_bronze(conn, request)
        seconds = time.perf_counter() - started
    return seconds, load.rows


def bronze_materialize(endpoint: str, hours: list[str], workdir: Path) -> tuple[float, int]:
    path = workdir / "bench_bronze.duckdb"
    path.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as home, dg.instance_for_test(temp_dir=home) as instance:
        started = time.perf_counter()
        warehouse = Warehouse(database_path=str(path))
        env = build_environment(environment_settings("dev"), partitions_start=hours[0])
        result = dg.materialize(
            [build_bronze_asset("raw", env)],
            instance=instance,
            resources={
                "landing": LandingZone(endpoint_url=endpoint),
                "warehouse": warehouse,
                "lakebase": Lakebase(),
                "engine": DuckDBEngine(**engine_fields(env.settings)),
            },
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            tags={
                "dagster/asset_partition_range_start": hours[0],
                "dagster/asset_partition_range_end": hours[-1],
            },
        )
        seconds = time.perf_counter() - started
    events = result.asset_materializations_for_node("bronze__raw")
    return seconds, sum(int(e.metadata["dagster/row_count"].value) for e in events)


def duckdb_ceiling(endpoint: str, workdir: Path) -> tuple[float, int]:
    import duckdb_extensions

    path = workdir / "bench_ceiling.duckdb"
    path.unlink(missing_ok=True)
    with duckdb.connect(str(path)) as conn:
        duckdb_extensions.import_extension("httpfs", con=conn)
        conn.execute("LOAD httpfs")
        host = endpoint.removeprefix("http://")
        conn.execute(
            f"CREATE SECRET (TYPE s3, KEY_ID 'bench', SECRET 'bench-secret', ENDPOINT '{host}', "
            "URL_STYLE 'path', USE_SSL false, REGION 'us-east-1')"
        )
        started = time.perf_counter()
        conn.execute(
            f"CREATE TABLE ceiling AS SELECT * FROM read_parquet('s3://{BUCKET}/year=*/*/*/*/*/*.parquet')"
        )
        seconds = time.perf_counter() - started
        rows = conn.execute("SELECT count(*) FROM ceiling").fetchone()[0]  # type: ignore[index]
    return seconds, int(rows)


def dlt_load(endpoint: str, keys: list[str], workdir: Path) -> tuple[float, int]:
    """dlt's filesystem source reading Parquet into a DuckDB destination."""
    import dlt
    from dlt.sources.filesystem import filesystem, read_parquet

    os.environ.update(
        {
            "SOURCES__FILESYSTEM__CREDENTIALS__AWS_ACCESS_KEY_ID": "bench",
            "SOURCES__FILESYSTEM__CREDENTIALS__AWS_SECRET_ACCESS_KEY": "bench-secret",
            "SOURCES__FILESYSTEM__CREDENTIALS__ENDPOINT_URL": endpoint,
            "SOURCES__FILESYSTEM__CREDENTIALS__REGION_NAME": "us-east-1",
            "RUNTIME__LOG_LEVEL": "WARNING",
            "DLT_DATA_DIR": str(workdir / "dlt_data"),
            "DLT_PROJECT_DIR": str(workdir / "dlt_project"),
        }
    )
    path = workdir / "bench_dlt.duckdb"
    path.unlink(missing_ok=True)
    rows = 0
    started = time.perf_counter()
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{int(started)}",
        destination=dlt.destinations.duckdb(str(path)),
        dataset_name="landing",
        pipelines_dir=str(workdir / "dlt_pipelines"),
    )
    for key in keys:
        directory, name = key.rsplit("/", 1)
        files = filesystem(bucket_url=f"s3://{BUCKET}/{directory}", file_glob=name)
        pipeline.run((files | read_parquet()).with_name("raw"), write_disposition="append")
    seconds = time.perf_counter() - started
    with duckdb.connect(str(path), read_only=True) as conn:
        rows = int(conn.execute("SELECT count(*) FROM landing.raw").fetchone()[0])  # type: ignore[index]
    return seconds, rows


def seed_objects(client: Any, bucket: str, count: int) -> None:
    """`count` keys over many hours (data + sidecar pairs), tiny bodies: listing is what we time."""
    client.create_bucket(Bucket=bucket)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    keys = []
    for i in range(count // 2):
        hour = base + timedelta(hours=i // 50)  # 50 objects per hour
        stem = f"year={hour:%Y}/month={hour:%m}/day={hour:%d}/hour={hour:%H}/n{i % 50}/b-{i:08d}"
        keys += [f"{stem}.parquet", f"{stem}.json"]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=k, Body=b"x"), keys))


def tick_times(client: Any, sizes: list[int]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for size in sizes:
        bucket = f"tick-bench-{size}"
        seed_objects(client, bucket, size)
        discovery = LandingDiscovery(
            client=client, buckets=[bucket], partition_key_for=lambda b, h: h.isoformat(),
            lookback_hours=3, full_scan_interval_hours=6, max_keys_per_tick=20_000,
        )  # fmt: skip
        now = datetime(2026, 3, 1, tzinfo=UTC)
        cursor, ticks, slowest, total = LandingCursor(), 0, 0.0, 0.0
        while True:  # a full reconciliation pass, in bounded ticks
            started = time.perf_counter()
            outcome = discovery.tick(cursor, [], now=now)
            elapsed = time.perf_counter() - started
            ticks, slowest, total = ticks + 1, max(slowest, elapsed), total + elapsed
            cursor = LandingCursor.from_json(outcome.cursor.to_json())
            if outcome.reconciliation == "finished a full pass":
                break
        started = time.perf_counter()
        discovery.tick(cursor, [], now=now)  # a steady tick: recent hours only
        out[str(size)] = {
            "steady_tick_s": time.perf_counter() - started,
            "reconciliation_ticks": ticks,
            "slowest_reconciliation_tick_s": slowest,
            "full_pass_s": total,
        }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--batch-rows", type=int, default=8_000)
    parser.add_argument("--dlt-objects", type=int, default=12)
    parser.add_argument("--tick-sizes", default="1000,10000,100000")
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--workdir", type=Path, default=CACHE)
    args = parser.parse_args(argv)
    if args.tiny:
        args.rows, args.batch_rows, args.dlt_objects, args.tick_sizes = 20_000, 1_000, 2, "200,600"
    args.workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    with moto_s3_server() as endpoint:
        env = s3_env(endpoint)
        os.environ.update({k: env[k] for k in env if k.startswith("AWS_")})
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        upload_with_agent(args.rows, args.batch_rows, env, args.workdir)
        keys = data_keys(client)
        hours = sorted({f"{hour_of_key(k):%Y-%m-%d-%H}:00" for k in keys})  # type: ignore[str-format]
        results["objects"], results["hours"] = len(keys), len(hours)

        seconds, rows = duckdb_ceiling(endpoint, args.workdir)
        results["ceiling_rows_per_s"], results["ceiling_rows"] = rows / seconds, rows
        seconds, rows = bronze_load(endpoint, hours, args.workdir)
        results["bronze_rows_per_s"], results["bronze_rows"] = rows / seconds, rows
        seconds, rows = bronze_materialize(endpoint, hours, args.workdir)
        results["dagster_rows_per_s"], results["dagster_rows"] = rows / seconds, rows
        seconds, rows = dlt_load(endpoint, keys[: args.dlt_objects], args.workdir)
        results["dlt_rows_per_s"], results["dlt_rows"] = rows / seconds, rows
        results["ticks"] = tick_times(client, [int(s) for s in args.tick_sizes.split(",")])

    results["bronze_vs_ceiling"] = results["bronze_rows_per_s"] / results["ceiling_rows_per_s"]
    results["bronze_vs_dlt"] = results["bronze_rows_per_s"] / results["dlt_rows_per_s"]
    results["dagster_vs_ceiling"] = results["dagster_rows_per_s"] / results["ceiling_rows_per_s"]
    print(f"Landing Parquet -> DuckDB: {results['objects']} objects, {results['hours']} hours")
    print(f"  DuckDB read_parquet (ceiling): {results['ceiling_rows_per_s']:>12,.0f} rows/s "
          f"({results['ceiling_rows']:,} rows)")  # fmt: skip
    print(f"  bronze load (verified)       : {results['bronze_rows_per_s']:>12,.0f} rows/s "
          f"({results['bronze_rows']:,} rows)")  # fmt: skip
    print(f"  bronze via dagster materialize: {results['dagster_rows_per_s']:>11,.0f} rows/s "
          f"({results['dagster_rows']:,} rows, {results['hours']} partition events)")  # fmt: skip
    print(f"  dlt filesystem -> duckdb     : {results['dlt_rows_per_s']:>12,.0f} rows/s "
          f"({results['dlt_rows']:,} rows from {args.dlt_objects} objects)")  # fmt: skip
    print(f"  bronze / ceiling             : {results['bronze_vs_ceiling']:.0%} (target >= 75%)")
    print(f"  bronze / dlt                 : {results['bronze_vs_dlt']:.1f}x (target >= 20x)")
    print(f"  via dagster / ceiling        : {results['dagster_vs_ceiling']:.0%}")
    print(
        "Sensor tick time by bucket size (recent-hours tick; full reconciliation in bounded ticks)"
    )
    for size, t in results["ticks"].items():
        print(
            f"  {int(size):>7,} objects: steady tick {t['steady_tick_s']:.2f}s; reconciliation "
            f"{t['reconciliation_ticks']} tick(s), "
            f"slowest {t['slowest_reconciliation_tick_s']:.2f}s, "
            f"full pass {t['full_pass_s']:.1f}s"
        )
    (args.workdir / f"lakehouse_{args.rows}.json").write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
