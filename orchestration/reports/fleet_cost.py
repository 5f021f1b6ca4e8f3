"""`reports/fleet_cost_projection`: S3, compute and Lakebase per month at fleet sizes people
plan for (10, 1,000 and 100,000 nodes by default), scaled from the pipeline measured here."""

import json

import dagster as dg
from pydantic import Field

from orchestration.home import write_private
from orchestration.lakebase import cost
from orchestration.output import (
    markdown_table,
    money,
    reports_directory,
    svg_bar_panels,
    svg_markdown,
    write_json,
)
from orchestration.reports.projection import Fleet, Measured, Rates, monthly_cost
from orchestration.warehouse import Warehouse, table_exists

S3_PRICES = {"storage_gb_month": 0.023, "put_per_1000": 0.005, "get_per_1000": 0.0004}


class FleetCostConfig(dg.Config):
    """The fleet to project to; prices default to list prices."""

    nodes: list[int] = Field(default=[10, 1_000, 100_000], min_length=1)
    readings_per_node_per_day: int = Field(default=4 * 1440, gt=0)  # 4 sensors, one a minute
    sensors_per_node: int = Field(default=4, gt=0)
    uploads_per_node_per_day: int = Field(default=288, gt=0)  # an agent cycle every 5 minutes
    retention_days: int = Field(default=30, gt=0)
    readings_per_compute_second: float = Field(
        default=100_000,
        gt=0,
        description="the pipeline's rate once data dominates; bench.databricks builds gold at "
        "~160k rows/s on 2 cores, rounded down for bronze, silver and the syncs",
    )
    compute_usd_per_hour: float | None = Field(
        default=None, description="default: the environment's DBU rate x price, or 4 x $0.55"
    )
    lakebase_prices: cost.Prices = Field(default_factory=cost.Prices)


def _measured(warehouse: Warehouse) -> Measured:
    reports = reports_directory()
    pipeline = json.loads((reports / "pipeline_cost.json").read_text())
    lakebase = json.loads((reports / "lakebase_cost.json").read_text())
    with warehouse.connect(read_only=True) as conn:
        readings = synced = 0
        if table_exists(conn, "silver_sensor_readings"):
            readings = conn.execute("SELECT count(*) FROM silver_sensor_readings").fetchone()[0]  # type: ignore[index]
        if table_exists(conn, "gold_sensor_hourly_stats"):
            synced = conn.execute("SELECT count(*) FROM gold_sensor_hourly_stats").fetchone()[0]  # type: ignore[index]
    tables = lakebase["measured"]["tables"]
    return Measured(
        readings=int(readings),
        s3_bytes=sum(int(b["bytes"]) for b in pipeline["buckets"].values()),
        compute_seconds=float(sum(pipeline["compute_seconds"].values())),
        compute_steps=int(sum(pipeline.get("compute_steps", {}).values())),
        assets=len(pipeline["compute_seconds"]),
        lakebase_bytes=int(tables.get("gold_sensor_hourly_stats", 0)),
        synced_rows=int(synced),
    )


@dg.asset(
    key=["reports", "fleet_cost_projection"],
    deps=[dg.AssetKey(["reports", "pipeline_cost"]), dg.AssetKey(["reports", "lakebase_cost"])],
    group_name="reports",
    kinds={"json"},
    owners=["team:data-platform"],
)
def fleet_cost_projection(
    context: dg.AssetExecutionContext, config: FleetCostConfig, warehouse: Warehouse
) -> dg.MaterializeResult:
    """Monthly cost of S3, compute and Lakebase for fleets of the configured sizes, from the
    unit costs measured on this platform (see the report's `measured` block): S3 by bytes and
    requests, compute by runs (measured seconds per run, each asset hourly) plus the readings at
    `readings_per_compute_second`, Lakebase by synced rows."""
    try:
        measured = _measured(warehouse)
    except FileNotFoundError as exc:
        raise dg.Failure(
            description=f"{exc.filename} is missing: materialize reports/pipeline_cost and "
            "reports/lakebase_cost first",
            allow_retries=False,
        ) from None
    if measured.readings == 0:
        raise dg.Failure(description="no readings in silver yet: nothing to scale from",
                         allow_retries=False)  # fmt: skip
    workspace = warehouse.settings().databricks
    per_hour = config.compute_usd_per_hour or (
        workspace.compute.dbu_per_hour * workspace.usd_per_dbu if workspace else 4 * 0.55
    )
    rates = Rates(S3_PRICES["storage_gb_month"], S3_PRICES["put_per_1000"],
                  S3_PRICES["get_per_1000"], per_hour, config.readings_per_compute_second,
                  config.lakebase_prices)  # fmt: skip
    projections = {}
    for nodes in config.nodes:
        fleet = Fleet(nodes, config.readings_per_node_per_day, config.sensors_per_node,
                      config.uploads_per_node_per_day, config.retention_days)  # fmt: skip
        projections[nodes] = monthly_cost(fleet, measured, rates)
    panels = {f"{nodes:,} nodes, per month": parts for nodes, parts in projections.items()}
    svg = svg_bar_panels(panels)
    chart_file = write_private(reports_directory() / "fleet_cost_projection.svg", svg)
    path = write_json("fleet_cost_projection", {
        "config": config.model_dump(mode="json"), "measured": measured.__dict__,
        "compute_usd_per_hour": per_hour, "monthly_usd": projections,
    })  # fmt: skip
    table = markdown_table(
        ["nodes", "readings / month", "S3", "compute", "Lakebase", "total"],
        [[f"{n:,}", f"{n * config.readings_per_node_per_day * 30:,}", money(p["s3"]),
          money(p["compute"]), money(p["lakebase"]), f"**{money(p['total'])}**"]
         for n, p in projections.items()],
    )  # fmt: skip
    largest = projections[max(projections)]
    context.log.info(f"fleet cost projection: {path}")
    return dg.MaterializeResult(
        metadata={
            "chart": dg.MetadataValue.md(svg_markdown(svg, "monthly cost by fleet size")),
            "projection": dg.MetadataValue.md(table),
            f"usd_month_{max(projections)}_nodes": round(largest["total"], 2),
            "measured_readings": measured.readings,
            "measured_s3_bytes_per_reading": round(measured.s3_bytes / measured.readings, 2),
            "measured_seconds_per_asset_run": round(
                measured.compute_seconds / max(measured.compute_steps, 1), 3
            ),
            "compute_usd_per_hour": per_hour,
            "chart_file": dg.MetadataValue.path(str(chart_file)),
            "json": dg.MetadataValue.path(str(path)),
        }
    )
