"""`reports/*`: Lakebase cost estimate, pipeline cost, and the Lakebase Asset Bundle."""

from collections import defaultdict
from typing import Any

import dagster as dg
import psycopg
from pydantic import Field

from edge_agent.contract import SCENARIOS
from orchestration.environment import Environment
from orchestration.home import write_private
from orchestration.lakebase import cost
from orchestration.lakebase.bundle import bundle_resources, bundle_yaml
from orchestration.lakebase.convert import convert_folder, prove, write_converted
from orchestration.lakebase.postgres import Lakebase
from orchestration.lakebase.target import sync_history
from orchestration.lakebase.workload import load_workload, synced_asset_keys
from orchestration.output import (
    bar_chart,
    markdown_table,
    money,
    reports_directory,
    svg_bar_panels,
    svg_markdown,
    write_json,
)
from orchestration.reports.databricks_compute import databricks_compute
from orchestration.reports.fleet_cost import S3_PRICES, fleet_cost_projection
from orchestration.reports.query_load import query_load
from orchestration.resources import LandingZone
from orchestration.transforms.gold import GOLD_TABLES
from orchestration.warehouse import Warehouse, table_exists

SYNCED = synced_asset_keys()
# The assets whose runs are compute on the Databricks engine.
COMPUTED = [
    *(dg.AssetKey(["bronze", s]) for s in SCENARIOS),
    dg.AssetKey(["silver", "sensor_readings"]),
    *(dg.AssetKey(["gold", g.entity]) for g in GOLD_TABLES),
    dg.AssetKey(["gold", "fleet_health"]),
    dg.AssetKey(["gold", "readings_all_regions"]),
    *SYNCED,
]


class CostConfig(dg.Config):
    prices: cost.Prices = Field(default_factory=cost.Prices)


def _measured(conn: psycopg.Connection, schema: str) -> dict[str, Any]:
    """Sizes from the real database; sync durations and rates from real syncs."""
    database = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]  # type: ignore[index]
    tables = conn.execute(
        "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
        [schema],
    ).fetchall()
    syncs = sync_history(conn, schema)  # this environment's syncs only
    return {"database_bytes": int(database), "tables": dict(tables), "syncs": syncs}


@dg.asset(
    key=["reports", "lakebase_cost"],
    deps=SYNCED,
    group_name="reports",
    kinds={"postgres", "json"},
)
def lakebase_cost(
    context: dg.AssetExecutionContext, config: CostConfig, lakebase: Lakebase, warehouse: Warehouse
) -> dg.MaterializeResult:
    """Monthly Lakebase cost, provisioned (accelerator) and autoscaling, from measured sizes."""
    workload, prices = load_workload(), config.prices
    with lakebase.connect() as conn:
        measured = _measured(conn, warehouse.settings().schema)
    storage_gb = max(cost.gb(measured["database_bytes"]), workload.database_storage.data_stored_gb)
    provisioned = cost.provisioned_monthly(workload, storage_gb, prices)
    autoscaling = cost.autoscaling_monthly(provisioned["capacity_units"], storage_gb, prices)
    totals = {"provisioned": cost.total(provisioned), "autoscaling": cost.total(autoscaling)}
    items = sorted({*provisioned, *autoscaling} - {"capacity_units", "sync_hours_each"})
    side_by_side = markdown_table(
        ["item (per month)", "provisioned", "autoscaling"],
        [[i, money(provisioned.get(i, 0)), money(autoscaling.get(i, 0))] for i in items]
        + [["**total**", f"**{money(totals['provisioned'])}**",
            f"**{money(totals['autoscaling'])}**"],
           ["capacity units", provisioned["capacity_units"], autoscaling["capacity_units"]]],
    )  # fmt: skip
    syncs = markdown_table(
        ["table", "policy", "syncs", "avg s", "max s", "rows/s"],
        [[t, p, n, f"{a:.2f}", f"{m:.2f}", f"{r:,.0f}" if r else "-"]
         for t, p, n, a, m, r in measured["syncs"]],
    )  # fmt: skip
    warnings = cost.limit_warnings(storage_gb, int(provisioned["capacity_units"]))
    document = {
        "workload": workload.model_dump(mode="json"),
        "prices": prices.model_dump(),
        "measured": {**measured, "storage_gb": storage_gb},
        "provisioned_monthly": provisioned,
        "autoscaling_monthly": autoscaling,
        "totals_monthly": totals,
        "warnings": warnings,
    }
    path = write_json("lakebase_cost", document)
    context.log.info(f"Lakebase cost report: {path}")
    return dg.MaterializeResult(
        metadata={
            "monthly_usd_provisioned": round(totals["provisioned"], 2),
            "monthly_usd_autoscaling": round(totals["autoscaling"], 2),
            "capacity_units": provisioned["capacity_units"],
            "storage_gb_measured": round(storage_gb, 6),
            "cost": dg.MetadataValue.md(side_by_side),
            "monthly": dg.MetadataValue.md(
                f"provisioned **{money(totals['provisioned'])}**, "
                f"autoscaling **{money(totals['autoscaling'])}** per month"
            ),
            "chart": dg.MetadataValue.md(
                svg_markdown(
                    svg_bar_panels({"Lakebase, USD per month": totals}), "Lakebase monthly cost"
                )
            ),
            "syncs_measured": dg.MetadataValue.md(syncs),
            "table_bytes": dg.MetadataValue.json(measured["tables"]),
            "warnings": "; ".join(warnings) or "none",
            "json": dg.MetadataValue.path(str(path)),
        }
    )


def _bucket_usage(client: Any, bucket: str) -> dict[str, int]:
    objects = size = 0
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            contents = page.get("Contents", [])
            objects += len(contents)
            size += sum(int(o["Size"]) for o in contents)
    except client.exceptions.NoSuchBucket:
        pass
    return {"objects": objects, "bytes": size}


def _loads_per_bucket(warehouse: Warehouse) -> dict[str, int]:
    if not warehouse.path().exists():  # nothing loaded yet
        return {}
    with warehouse.connect(read_only=True) as conn:
        if not table_exists(conn, "_bronze_loads"):
            return {}
        rows = conn.execute(
            "SELECT split_part(object_uri, '/', 3), count(*) FROM _bronze_loads GROUP BY 1"
        ).fetchall()
    return {bucket: int(n) for bucket, n in rows}


def _compute_seconds(
    instance: dg.DagsterInstance, runs: int = 500
) -> tuple[dict[str, float], dict[str, int]]:
    """Seconds spent per step (one step per asset here) over the latest runs, and how many
    steps ran per asset."""
    seconds: dict[str, float] = defaultdict(float)
    steps: dict[str, int] = defaultdict(int)
    for record in instance.get_run_records(limit=runs):
        for step in instance.get_run_step_stats(record.dagster_run.run_id):
            if step.start_time and step.end_time:
                asset = step.step_key.replace("__", "/")
                seconds[asset] += step.end_time - step.start_time
                steps[asset] += 1
    return dict(sorted(seconds.items(), key=lambda kv: -kv[1])), dict(steps)


def _databricks_metadata(compute: dict[str, Any] | None) -> dict[str, Any]:
    if compute is None:
        return {}
    return {
        "databricks_job_runs": compute["job_runs"],
        "databricks_run_seconds": compute["seconds"],
        "databricks_dbu": compute["dbu"],
        "databricks_usd": compute["usd"],
        "databricks_seconds_by_asset": dg.MetadataValue.md(
            bar_chart(dict(list(compute["seconds_by_asset"].items())[:15]), " s")
        ),
    }


@dg.asset(key=["reports", "pipeline_cost"], group_name="reports", kinds={"s3", "json"})
def pipeline_cost(
    context: dg.AssetExecutionContext, landing: LandingZone, warehouse: Warehouse
) -> dg.MaterializeResult:
    """S3 storage and requests per landing bucket, and compute time per asset from run history."""
    client = landing.client()
    settings = warehouse.settings()
    # DuckDB records each loaded object; on Databricks each listed object (data and sidecar) is
    # taken to be read once.
    loads = _loads_per_bucket(warehouse) if settings.engine == "duckdb" else None
    buckets = {}
    for scenario, names in landing.buckets().items():
        for bucket in names:
            with landing.reachable():
                usage = _bucket_usage(client, bucket)
            # bronze reads each object and its sidecar once
            gets = 2 * loads.get(bucket, 0) if loads is not None else usage["objects"]
            buckets[bucket] = {
                "scenario": scenario, **usage,
                "put_requests": usage["objects"], "get_requests": gets,
                "usd_month": cost.gb(usage["bytes"]) * S3_PRICES["storage_gb_month"]
                + usage["objects"] / 1000 * S3_PRICES["put_per_1000"]
                + gets / 1000 * S3_PRICES["get_per_1000"],
            }  # fmt: skip
    compute, steps = _compute_seconds(context.instance)
    workspace = settings.databricks
    databricks = None
    if workspace is not None:  # engine: databricks: job runs priced in DBUs
        databricks = databricks_compute(context.instance, COMPUTED, workspace)
    report = {"buckets": buckets, "compute_seconds": compute, "compute_steps": steps,
              "databricks": databricks,
              "s3_prices": S3_PRICES}  # fmt: skip
    path = write_json("pipeline_cost", report)
    table = markdown_table(
        ["bucket", "scenario", "objects", "MB", "PUT", "GET", "per month"],
        [[b, u["scenario"], u["objects"], f"{u['bytes'] / 1e6:.2f}", u["put_requests"],
          u["get_requests"], money(u["usd_month"])] for b, u in buckets.items()],
    )  # fmt: skip
    return dg.MaterializeResult(
        metadata={
            "buckets": dg.MetadataValue.md(table),
            "s3_usd_month": round(sum(u["usd_month"] for u in buckets.values()), 6),
            "compute_seconds_by_asset": dg.MetadataValue.md(
                bar_chart(dict(list(compute.items())[:15]), " s")
            ),
            "s3_objects": sum(u["objects"] for u in buckets.values()),
            "s3_bytes": sum(u["bytes"] for u in buckets.values()),
            "compute_seconds": round(sum(compute.values()), 1),
            **_databricks_metadata(databricks),
            "json": dg.MetadataValue.path(str(path)),
        }
    )


@dg.asset(key=["reports", "lakebase_bundle"], group_name="reports", kinds={"databricks", "yaml"})
def lakebase_bundle(warehouse: Warehouse) -> dg.MaterializeResult:
    """Databricks Asset Bundle resources (instance, catalog, synced tables) for this workload."""
    workload, settings = load_workload(), warehouse.settings()
    path = reports_directory() / f"lakebase_bundle_{settings.name}.yml"
    write_private(path, bundle_yaml(workload, settings))
    tables = bundle_resources(workload, settings)["resources"]["synced_database_tables"]
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "synced_tables": len(tables),
            "bundle": dg.MetadataValue.md(f"```yaml\n{path.read_text()}```"),
        }
    )


@dg.asset(
    key=["reports", "dashboard_queries"],
    deps=SYNCED,
    group_name="reports",
    kinds={"postgres", "sql"},
)
def dashboard_queries(lakebase: Lakebase, warehouse: Warehouse) -> dg.MaterializeResult:
    """The dashboard queries converted from Databricks SQL to Postgres and run on synced tables."""
    conversions = convert_folder()
    with lakebase.connect() as conn:
        prove(conn, warehouse.settings().schema, conversions)
    directory = reports_directory() / "queries_postgres"
    write_converted(conversions, directory)
    table = markdown_table(
        ["query", "converted", "ran", "rows", "ms", "problem"],
        [[c.name, "yes" if c.postgres else "no", "yes" if c.proven else "no",
          c.rows if c.rows is not None else "-",
          f"{c.milliseconds:.1f}" if c.milliseconds is not None else "-",
          c.error or c.run_error or ""] for c in conversions],
    )  # fmt: skip
    unproven = [c.name for c in conversions if not c.proven]
    if unproven:
        raise dg.Failure(
            description=f"queries not converted or not runnable: {', '.join(unproven)}",
            metadata={"queries": dg.MetadataValue.md(table)},
        )
    return dg.MaterializeResult(
        metadata={
            "queries": len(conversions),
            "proven": sum(c.proven for c in conversions),
            "report": dg.MetadataValue.md(table),
            "converted_to": dg.MetadataValue.path(str(directory)),
        }
    )


report_assets = [
    lakebase_cost,
    pipeline_cost,
    fleet_cost_projection,
    lakebase_bundle,
    dashboard_queries,
    query_load,
]
reports_daily_job = dg.define_asset_job(  # the load test runs on demand, not daily
    "reports_daily_job",
    selection=dg.AssetSelection.groups("reports") - dg.AssetSelection.assets(query_load),
)


def reports_daily_schedule(env: Environment) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="reports_daily_schedule", job=reports_daily_job, cron_schedule="0 6 * * *",
        execution_timezone="UTC", default_status=env.settings.schedule_status(),
        description="Daily cost reports and the Asset Bundle. Needs the landing S3 buckets and "
        "the Lakebase PostgreSQL reachable; stopped by default because a fresh machine has "
        "neither running: turn it on where they run.",
    )  # fmt: skip
