"""`lakehouse-demo`: the whole path end to end on embedded defaults, no cloud account needed.

Starts a loopback S3 endpoint, creates the landing buckets, runs `edge_demo_job` (simulated
nodes whose agents upload over Pipes) into the Dagster instance under ./dagster_home, ticks
every landing sensor and runs what they request (bronze), builds silver and gold for the hours
that changed, then prints what landed, what Dagster recorded, and the row counts per layer.
The local S3 keeps data in memory only, so every demo run starts from empty nodes and an
empty demo warehouse; the Dagster instance keeps every run for the UI.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import dagster as dg

from edge_agent.contract import SCENARIOS
from edge_agent.storage import BucketPolicy, ensure_buckets
from orchestration.defs import definitions_for
from orchestration.demo.local_s3 import DEMO_CREDENTIALS, local_s3_server
from orchestration.demo.pipeline import (
    ContinuousLag,
    build_derived,
    continuous_lag,
    layer_counts,
    quiet,
    show_dagster_events,
    sync_and_report,
    tick_sensors_and_load_bronze,
)
from orchestration.environment import resolve_environment
from orchestration.fleet.config import FleetConfig
from orchestration.home import dagster_home as home_directory
from orchestration.lakebase.postgres import Lakebase
from orchestration.lakebase.workload import load_workload
from orchestration.output import money
from orchestration.resources import LandingZone
from orchestration.settings import ConfigurationError
from orchestration.warehouse import Warehouse


def dagster_home() -> Path:
    home = home_directory().resolve()
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def create_landing_buckets(landing: LandingZone) -> list[tuple[str, str]]:
    wanted = [(landing.bucket(s), landing.lakehouse_region, s == "raw") for s in SCENARIOS[:4]]
    wanted += [(landing.bucket("regional", r), r, True) for r in landing.regional_regions]
    return ensure_buckets(landing.client(), wanted, BucketPolicy())


def landed(landing: LandingZone) -> list[dict[str, Any]]:
    """Per bucket: data objects, rejected objects, rows (from the JSON sidecars)."""
    client = landing.client()
    summary = []
    for scenario, buckets in landing.buckets().items():
        for bucket in buckets:
            stats: dict[str, Any] = defaultdict(int, bucket=bucket, scenario=scenario)
            paginator = client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket):
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    if not key.endswith(".json"):
                        continue
                    sidecar = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
                    kind = "rejected" if key.startswith("_rejected/") else "data"
                    stats[f"{kind}_objects"] += 1
                    stats[f"{kind}_rows"] += sidecar["row_count"]
                    if kind == "data":
                        stats["example_key"] = sidecar["object_key"]
            summary.append(stats)
    return summary


def recorded(instance: dg.DagsterInstance) -> list[tuple[str, int, list[str]]]:
    """Landing materializations in the instance: (asset, events, partitions)."""
    out = []
    for scenario in SCENARIOS:
        key = dg.AssetKey(["landing", scenario])
        events = instance.fetch_materializations(key, limit=10_000).records
        partitions = sorted({e.partition_key for e in events if e.partition_key})
        out.append((key.to_user_string(), len(events), partitions))
    return out


def print_report(home: Path, buckets: list[dict[str, Any]], assets: list[Any]) -> None:
    print("\nWhat landed in S3 (row counts from each object's JSON sidecar):")
    print(f"  {'bucket':<42} {'objects':>7} {'rows':>8} {'rejected rows':>13}")
    for b in buckets:
        print(
            f"  {b['bucket']:<42} {b['data_objects']:>7} {b['data_rows']:>8} "
            f"{b['rejected_rows']:>13}"
        )
        if b.get("example_key"):
            print(f"      e.g. {b['example_key']}")
    print("\nWhat Dagster recorded (landing materializations, one per object):")
    for key, count, partitions in assets:
        span = f"{partitions[0]} .. {partitions[-1]}" if partitions else "-"
        print(f"  {key:<22} {count:>5} materializations, hours {span}")
    print(f"\nDagster instance: {home}")
    print(f"See it in the UI:  DAGSTER_HOME={home} uv run dagster dev -f definitions.py")


def print_layers(warehouse: Warehouse, counts: list[tuple[str, int]]) -> None:
    settings = warehouse.settings()
    print(f"\nWarehouse (DuckDB): {warehouse.path()}")
    for table, rows in counts:
        print(f"  {settings.catalog}.{settings.schema}.{table:<28} {rows:>8} rows")
    print(
        'Query it:  uv run python -c "import duckdb; c = duckdb.connect(); '
        f"c.sql(\\\"ATTACH '{warehouse.path()}' AS {settings.catalog} (READ_ONLY)\\\"); "
        f"c.sql('FROM {settings.catalog}.{settings.schema}.gold_region_hourly_stats').show()\""
    )


def print_lakebase(
    lakebase: Lakebase, warehouse: Warehouse, home: Path, lags: list[ContinuousLag]
) -> None:
    schema = warehouse.settings().schema
    where = "embedded, under " + str(lakebase.embedded_path()) if lakebase.is_embedded() else "DSN"
    print(f"\nLakebase (PostgreSQL, {where}):")
    with lakebase.connect() as conn:
        for table in load_workload().delta_synchronization.tables_to_sync:
            found = conn.execute("SELECT to_regclass(%s)", [f"{schema}.{table.name}"]).fetchone()
            rows = "-"
            if found and found[0]:
                rows = conn.execute(f'SELECT count(*) FROM "{schema}"."{table.name}"').fetchone()[0]  # type: ignore[index]
            print(f"  {schema}.{table.name:<30} {rows:>8} rows  ({table.scheduling_policy.value})")
    for lag in lags:
        print(
            f"  {lag.table} (CONTINUOUS): source changed -> synced {lag.seconds:.1f} s later by "
            f"its sensor, ticked at once here.\n    Lag bound under the daemon: "
            f"{lag.bound_seconds} s (sensor interval) + the warehouse pool queue + the sync"
        )
    print(f"Connect:  {lakebase.psql_command()}")
    print(f"  as the read-only application role: add user={lakebase.app_role_for(schema)}")
    reports = home / "reports"
    cost_file = reports / "lakebase_cost.json"
    if cost_file.exists():
        totals = json.loads(cost_file.read_text())["totals_monthly"]
        print(f"\nCost report: {cost_file}")
        print(f"  Lakebase per month: provisioned ${totals['provisioned']:,.2f}, "
              f"autoscaling ${totals['autoscaling']:,.2f}")  # fmt: skip
    print(f"  pipeline cost: {reports / 'pipeline_cost.json'}")
    projection = reports / "fleet_cost_projection.json"
    if projection.exists():
        monthly = json.loads(projection.read_text())["monthly_usd"]
        sizes = ", ".join(f"{int(n):,} nodes {money(p['total'])}" for n, p in monthly.items())
        print(f"  fleet cost per month: {sizes} (S3, compute, Lakebase): "
              f"{reports / 'fleet_cost_projection.svg'}")  # fmt: skip
    load_file = reports / "query_load.json"
    if load_file.exists():
        load = json.loads(load_file.read_text())
        print(f"  dashboard query load ({load['clients']} clients, {load['seconds']:.0f} s): "
              f"{load['qps']:,.0f} QPS, p50 {load['p50_ms']} ms, p95 {load['p95_ms']} ms, "
              f"p99 {load['p99_ms']} ms: {load_file}")  # fmt: skip
        print("  more load: uv run lakebase-load --clients 8 --seconds 10")
    print(f"  Asset Bundle:  {reports / f'lakebase_bundle_{warehouse.settings().name}.yml'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lakehouse-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--rows-per-node", type=int, default=5_000)
    parser.add_argument(
        "--verbose", action="store_true", help="print Dagster's event stream (DEBUG) as runs go"
    )
    args = parser.parse_args(argv)
    show_dagster_events(args.verbose)
    load_workload()
    env = resolve_environment()  # LAKEHOUSE_ENV, read once for the whole demo
    if not env.settings.simulated_fleet:
        raise ConfigurationError(
            f"lakehouse-demo simulates a fleet, and environment {env.name!r} has none "
            "(simulated_fleet in environments.yaml): run it in dev or live"
        )
    home = dagster_home()
    warehouse = Warehouse(environment=env.name)
    # S3 is in memory: start nodes and the demo warehouse over, so all layers agree.
    shutil.rmtree(home / "edge_nodes", ignore_errors=True)
    warehouse.path().unlink(missing_ok=True)
    Path(f"{warehouse.path()}.wal").unlink(missing_ok=True)
    os.environ.update(DEMO_CREDENTIALS)
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"  # never probe instance metadata locally
    with local_s3_server() as endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        print(f"local S3 endpoint: {endpoint} (moto server, in memory)")
        landing = LandingZone.for_environment(env.settings)
        for name, state in create_landing_buckets(landing):
            print(f"  bucket {name}: {state}")
        defs = definitions_for(env, {"landing": landing, "warehouse": warehouse})
        instance = dg.DagsterInstance.get()
        job = defs.resolve_job_def("edge_demo_job")
        result = job.execute_in_process(
            instance=instance,
            run_config=dg.RunConfig(
                ops={"demo__edge_fleet": FleetConfig(rows_per_node=args.rows_per_node)},
                loggers=quiet()["loggers"],
            ),
        )
        if not result.success:
            print("edge_demo_job failed; see the run in the Dagster UI", file=sys.stderr)
            return 1
        print("\nticking the landing sensors and running what they request (bronze) ...")
        sensors = tick_sensors_and_load_bronze(defs, instance, landing)
        for scenario, requests in sensors.requests.items():
            keys = ", ".join(str(r.partition_key) for r in requests) or "nothing new"
            print(f"  landing_{scenario}_sensor: {len(requests)} run(s): {keys}")
        print(f"building silver and gold for {len(sensors.hours)} hour(s) ...")
        failed = sensors.failed_runs + build_derived(defs, instance, sensors.hours)
        print("syncing the gold tables into Postgres, then the cost reports ...")
        failed += sync_and_report(defs, instance)
        print("changing a CONTINUOUS table's source, ticking its sensor ...")
        lags = continuous_lag(defs, instance)
        print_report(home, landed(landing), recorded(instance))
        print_layers(warehouse, layer_counts(warehouse))
        print_lakebase(Lakebase(), warehouse, home, lags)
        if failed:
            print(f"\nfailed runs (see the UI): {', '.join(failed)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
