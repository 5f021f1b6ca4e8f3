"""CONTINUOUS synced tables: a sensor keeps each within a bounded lag of its source."""

import json

import dagster as dg

from orchestration.lakebase.workload import SyncPolicy, TableToSync, load_workload

# Lag bound: a source materialization is seen within this interval, then the sync run starts
# (queue wait for the `warehouse` pool) and finishes (seconds for the gold tables).
CONTINUOUS_INTERVAL_SECONDS = 30


def build_continuous_sensor(spec: TableToSync) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"lakebase_{spec.name}_continuous",
        asset_selection=[spec.asset_key],
        minimum_interval_seconds=CONTINUOUS_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Syncs {spec.name} to Postgres after every change of its source "
        f"(lag bound: {CONTINUOUS_INTERVAL_SECONDS} s plus the sync itself).",
    )
    def continuous(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        # Cursor: {"source_storage_id": <id of the source materialization last synced>}
        cursor = json.loads(context.cursor) if context.cursor else {}
        records = context.instance.fetch_materializations(spec.source_asset_key, limit=1).records
        if not records:
            return dg.SkipReason(f"{'/'.join(spec.source_asset_key.path)} was never materialized")
        latest = records[0].storage_id
        if cursor.get("source_storage_id") == latest:
            return dg.SkipReason(f"in sync with source materialization {latest}")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(run_key=f"{spec.name}:{latest}", asset_selection=[spec.asset_key])
            ],
            cursor=json.dumps({"source_storage_id": latest}),
        )

    return continuous


def continuous_sensors() -> list[dg.SensorDefinition]:
    tables = load_workload().delta_synchronization.tables_to_sync
    return [
        build_continuous_sensor(t) for t in tables if t.scheduling_policy is SyncPolicy.CONTINUOUS
    ]
