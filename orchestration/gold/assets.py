"""`gold/*`: hourly statistics, anomalies, fleet health and the cross-region readings view."""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from orchestration.automation import on_upstream_change
from orchestration.changes import record_change
from orchestration.landing.objects import hour_key
from orchestration.output import warehouse_table
from orchestration.partitions import hourly_partitions
from orchestration.transforms.gold import (
    GOLD_TABLES,
    READINGS_ALL_REGIONS_SELECT,
    GoldTable,
    fleet_health_select,
)
from orchestration.transforms.silver import SILVER_TABLE
from orchestration.warehouse import Warehouse, create_table_like, quote, table_exists

SILVER_KEY = dg.AssetKey(["silver", "sensor_readings"])
SILENT_CHECK = "no_silent_sensors"


def hourly_gold_args(spec: GoldTable) -> dict[str, Any]:
    """What an hourly gold asset is, on either engine (all but its compute and kinds)."""
    return dict(
        key=["gold", spec.entity],
        owners=["team:data-platform"],
        deps=[SILVER_KEY],
        partitions_def=hourly_partitions,
        group_name="gold",
        pool="warehouse",
        automation_condition=on_upstream_change(),
        metadata={"partition_expr": "hour", "primary_key": ", ".join(spec.primary_key)},
        backfill_policy=dg.BackfillPolicy.single_run(),
        description=spec.description,
    )


def build_hourly_gold(spec: GoldTable) -> dg.AssetsDefinition:
    @dg.asset(**hourly_gold_args(spec), kinds={"duckdb"})
    def gold(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        table = f"gold_{spec.entity}"
        window = context.partition_time_window
        params = {"start": window.start, "end": window.end}
        bounds = [window.start, window.end]
        with warehouse.connect() as conn:
            if not table_exists(conn, SILVER_TABLE):
                raise dg.Failure(description=f"{SILVER_TABLE} does not exist yet")
            conn.execute("BEGIN TRANSACTION")
            if not table_exists(conn, table):
                create_table_like(conn, table, spec.select, params)
            conn.execute(f"DELETE FROM {quote(table)} WHERE hour >= ? AND hour < ?", bounds)
            conn.execute(f"INSERT INTO {quote(table)} BY NAME {spec.select}", params)
            record_change(conn, table, "hour", window.start, window.end)  # for Lakebase syncs
            conn.execute("COMMIT")
            by_hour = {
                hour_key(hour): int(rows)
                for hour, rows in conn.execute(
                    f"SELECT hour, count(*) FROM {quote(table)} "
                    "WHERE hour >= ? AND hour < ? GROUP BY ALL",
                    bounds,
                ).fetchall()
            }
            shown = warehouse_table(
                conn, table, warehouse.display_name("gold", spec.entity), warehouse.path(),
                "hour >= ? AND hour < ?", bounds, "hour DESC",
            )  # fmt: skip
        for partition_key in context.partition_keys:  # each hour carries its own count
            context.add_asset_metadata(
                {"dagster/row_count": by_hour.get(partition_key, 0)}, partition_key=partition_key
            )
        return dg.MaterializeResult(
            metadata={
                **shown,
                "run_partitions": len(context.partition_keys),
                "run_rows_written": sum(by_hour.values()),
            }
        )

    return gold


FLEET_HEALTH_ARGS: dict[str, Any] = dict(
    key=["gold", "fleet_health"],
    owners=["team:data-platform"],
    deps=[SILVER_KEY],
    group_name="gold",
    pool="warehouse",
    automation_condition=on_upstream_change(),
    metadata={"primary_key": "node_id, sensor_id"},
    check_specs=[
        dg.AssetCheckSpec(
            SILENT_CHECK,
            asset=dg.AssetKey(["gold", "fleet_health"]),
            description="Warns, naming them, about sensors that stopped delivering.",
        )
    ],
    description="Last reading per node and sensor, readings in the last 24 h, who went silent.",
)


@dg.asset(**FLEET_HEALTH_ARGS, kinds={"duckdb"})
def fleet_health(
    context: dg.AssetExecutionContext, warehouse: Warehouse
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Last reading per node and sensor, readings in the last 24 h, and who went silent."""
    silent_after = warehouse.settings().silent_after_hours
    with warehouse.connect() as conn:
        conn.execute(
            f"CREATE OR REPLACE TABLE gold_fleet_health AS {fleet_health_select(silent_after)}"
        )
        rows = conn.execute("SELECT count(*) FROM gold_fleet_health").fetchone()[0]  # type: ignore[index]
        silent = conn.execute(
            "SELECT node_id, sensor_id, last_reading_at FROM gold_fleet_health "
            "WHERE status = 'silent' ORDER BY last_reading_at"
        ).fetchall()
        nodes = conn.execute("SELECT count(DISTINCT node_id) FROM gold_fleet_health").fetchone()[0]  # type: ignore[index]
        shown = warehouse_table(
            conn, "gold_fleet_health", warehouse.display_name("gold", "fleet_health"),
            warehouse.path(), order="last_reading_at DESC",
        )  # fmt: skip
    listing = "\n".join(f"| {n} | {s} | {str(t)[:19]} |" for n, s, t in silent[:50])
    yield dg.AssetCheckResult(
        check_name=SILENT_CHECK,
        passed=not silent,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "silent_sensors": len(silent),
            "silent_after_hours": silent_after,
            "sensors": dg.MetadataValue.md(
                "| node | sensor | last reading |\n|---|---|---|\n" + listing if silent else "none"
            ),
        },
    )
    context.log.info(f"{rows} sensors on {nodes} nodes, {len(silent)} silent")
    yield dg.MaterializeResult(
        metadata={
            **shown,
            "dagster/row_count": int(rows),
            "nodes": int(nodes),
            "silent_sensors": len(silent),
        }
    )


READINGS_ALL_REGIONS_ARGS: dict[str, Any] = dict(
    key=["gold", "readings_all_regions"],
    owners=["team:data-platform"],
    deps=[SILVER_KEY],
    group_name="gold",
    pool="warehouse",
    automation_condition=dg.AutomationCondition.on_missing(),
    metadata={"primary_key": "sensor_id, event_time"},
    description="One view over every region's readings, for cross-region analytics.",
)


@dg.asset(**READINGS_ALL_REGIONS_ARGS, kinds={"duckdb"})
def readings_all_regions(warehouse: Warehouse) -> dg.MaterializeResult:
    """One view over every region's readings, for cross-region analytics."""
    with warehouse.connect() as conn:
        conn.execute(
            f"CREATE OR REPLACE VIEW gold_readings_all_regions AS {READINGS_ALL_REGIONS_SELECT}"
        )
        shown = warehouse_table(
            conn, "gold_readings_all_regions",
            warehouse.display_name("gold", "readings_all_regions"), warehouse.path(),
            order="event_time DESC",
        )  # fmt: skip
        by_region = dict(
            conn.execute(
                "SELECT region, count(*) FROM gold_readings_all_regions GROUP BY ALL ORDER BY ALL"
            ).fetchall()
        )
    return dg.MaterializeResult(
        metadata={
            **shown,
            "rows_by_region": dg.MetadataValue.json(by_region),
            "dagster/row_count": sum(by_region.values()),
        }
    )


gold_assets = [
    *(build_hourly_gold(spec) for spec in GOLD_TABLES),
    fleet_health,
    readings_all_regions,
]
