"""`lakebase/<table>`: lakehouse tables synced into Postgres, one asset per workload entry, on
either engine (local PostgreSQL, or Lakebase synced tables on Databricks)."""

from typing import Any

import dagster as dg

from orchestration.automation import on_upstream_change
from orchestration.engine import LakehouseEngine
from orchestration.environment import Environment
from orchestration.lakebase.workload import SyncPolicy, TableToSync, load_workload


def _automation(spec: TableToSync) -> dg.AutomationCondition | None:
    if spec.scheduling_policy is SyncPolicy.TRIGGERED:  # runs when its upstream materializes
        return on_upstream_change()
    return None  # SNAPSHOT: by schedule or by hand; CONTINUOUS: by its sensor


def build_synced_table(spec: TableToSync, env: Environment) -> dg.AssetsDefinition:
    @dg.asset(
        key=spec.asset_key,
        owners=["team:data-platform"],
        deps=[spec.source_asset_key],
        group_name="lakebase",
        pool="warehouse",  # reads (and, incrementally, writes) the DuckDB file
        kinds=env.serving_kinds,
        required_resource_keys=env.resource_keys(),
        automation_condition=_automation(spec),
        metadata={
            "primary_key": ", ".join(spec.primary_keys),
            "scheduling_policy": spec.scheduling_policy.value,
            "timeseries_key": spec.timeseries_key or "none",
            "dagster/table_name": f"{env.settings.schema}.{spec.name}",
        },
        description=f"{spec.name} kept in Postgres ({spec.scheduling_policy.value} sync).",
    )
    def synced(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        engine: LakehouseEngine = context.resources.engine
        build = engine.sync_table(context, spec)
        context.log.info(build.message)
        metadata: dict[str, Any] = {
            "dagster/table_name": build.table,
            "scheduling_policy": spec.scheduling_policy.value,
            **build.shown,
        }
        if build.rows is not None:
            metadata["dagster/row_count"] = build.rows
        return dg.MaterializeResult(metadata=metadata)

    return synced


def synced_table_assets(env: Environment) -> list[dg.AssetsDefinition]:
    tables = load_workload().delta_synchronization.tables_to_sync
    return [build_synced_table(t, env) for t in tables]
