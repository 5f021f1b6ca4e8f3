"""`gold/*`: hourly statistics, anomalies, fleet health and the cross-region readings view."""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from orchestration.automation import on_upstream_change
from orchestration.engine import LakehouseEngine
from orchestration.environment import Environment
from orchestration.output import markdown_table, table_schema
from orchestration.transforms.gold import (
    GOLD_TABLES,
    READINGS_ALL_REGIONS_SELECT,
    GoldTable,
    fleet_health_select,
)
from orchestration.transforms.shapes import select_columns

SILVER_KEY = dg.AssetKey(["silver", "sensor_readings"])
SILENT_CHECK = "no_silent_sensors"


def _table(env: Environment, entity: str, select: str) -> dict[str, object]:
    """Definition metadata: the table's name and the columns its SQL yields."""
    return {
        **env.table_metadata("gold", entity),
        "dagster/column_schema": table_schema(select_columns(select)),
    }


def _whole_table(env: Environment, entity: str, select: str, primary_key: str) -> dict[str, Any]:
    """What every unpartitioned gold table's definition shares (rebuilt whole from silver)."""
    return {
        "key": ["gold", entity],
        "owners": ["team:data-platform"],
        "deps": [SILVER_KEY],
        "group_name": "gold",
        "pool": "warehouse",
        "kinds": env.kinds,
        "required_resource_keys": env.resource_keys(),
        "metadata": {"primary_key": primary_key, **_table(env, entity, select)},
    }


def build_hourly_gold(spec: GoldTable, env: Environment) -> dg.AssetsDefinition:
    @dg.asset(
        key=["gold", spec.entity],
        owners=["team:data-platform"],
        deps=[SILVER_KEY],
        partitions_def=env.hourly,
        group_name="gold",
        pool="warehouse",
        kinds=env.kinds,
        required_resource_keys=env.resource_keys(),
        automation_condition=on_upstream_change(),
        metadata={
            "partition_expr": "hour",
            "primary_key": ", ".join(spec.primary_key),
            **_table(env, spec.entity, spec.select),
        },
        backfill_policy=dg.BackfillPolicy.single_run(),
        description=spec.description,
    )
    def gold(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        engine: LakehouseEngine = context.resources.engine
        window = context.partition_time_window
        build = engine.build_hourly_gold(context, spec, window.start, window.end)
        for partition_key in context.partition_keys:  # each hour carries its own count
            context.add_asset_metadata(
                {"dagster/row_count": build.rows_by_hour.get(partition_key, 0)},
                partition_key=partition_key,
            )
        return dg.MaterializeResult(
            metadata={
                **engine.table_metadata("gold", spec.entity),
                **build.shown,
                "run_partitions": len(context.partition_keys),
                "run_rows_written": sum(build.rows_by_hour.values()),
            }
        )

    return gold


def fleet_health_asset(env: Environment) -> dg.AssetsDefinition:
    select = fleet_health_select(env.settings.silent_after_hours)

    @dg.asset(
        **_whole_table(env, "fleet_health", select, "node_id, sensor_id"),
        automation_condition=on_upstream_change(),
        check_specs=[
            dg.AssetCheckSpec(
                SILENT_CHECK,
                asset=dg.AssetKey(["gold", "fleet_health"]),
                description="Warns, naming them, about sensors that stopped delivering.",
            )
        ],
        description="Last reading per node and sensor, readings in the last 24 h, who went silent.",
    )
    def fleet_health(
        context: dg.AssetExecutionContext,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        engine: LakehouseEngine = context.resources.engine
        silent_after = engine.settings().silent_after_hours
        build = engine.build_fleet_health(context, silent_after)
        listing = markdown_table(
            ["node", "sensor", "last reading"],
            [[n, s, str(t)[:19]] for n, s, t in build.silent_sensors],
        )
        yield dg.AssetCheckResult(
            check_name=SILENT_CHECK,
            passed=not build.silent,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "silent_sensors": build.silent,
                "silent_after_hours": silent_after,
                "sensors": dg.MetadataValue.md(listing if build.silent_sensors else "none"),
            },
        )
        context.log.info(f"{build.rows} sensors on {build.nodes} nodes, {build.silent} silent")
        yield dg.MaterializeResult(
            metadata={
                **engine.table_metadata("gold", "fleet_health"),
                **build.shown,
                "dagster/row_count": build.rows,
                "nodes": build.nodes,
                "silent_sensors": build.silent,
            }
        )

    return fleet_health


def readings_all_regions_asset(env: Environment) -> dg.AssetsDefinition:
    @dg.asset(
        **_whole_table(
            env, "readings_all_regions", READINGS_ALL_REGIONS_SELECT, "sensor_id, event_time"
        ),
        automation_condition=dg.AutomationCondition.on_missing(),
        description="One view over every region's readings, for cross-region analytics.",
    )
    def readings_all_regions(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        engine: LakehouseEngine = context.resources.engine
        build = engine.build_view(context, "readings_all_regions", READINGS_ALL_REGIONS_SELECT)
        counts = {}
        if build.rows_by_region is not None:
            counts = {
                "rows_by_region": dg.MetadataValue.json(build.rows_by_region),
                "dagster/row_count": sum(build.rows_by_region.values()),
            }
        return dg.MaterializeResult(
            metadata={**engine.table_metadata("gold", "readings_all_regions"), **build.shown,
                      **counts}
        )  # fmt: skip

    return readings_all_regions


def gold_assets(env: Environment) -> list[dg.AssetsDefinition]:
    return [
        *(build_hourly_gold(spec, env) for spec in GOLD_TABLES),
        fleet_health_asset(env),
        readings_all_regions_asset(env),
    ]
