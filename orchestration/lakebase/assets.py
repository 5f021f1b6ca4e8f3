"""`lakebase/<table>`: warehouse tables synced into Postgres, one asset per workload entry."""

from typing import Any

import dagster as dg
import polars as pl
from psycopg import sql

from orchestration.automation import on_upstream_change
from orchestration.lakebase.postgres import Lakebase
from orchestration.lakebase.sync import (
    DuplicateKeyError,
    SourceMissingError,
    SyncResult,
    sync_table,
)
from orchestration.lakebase.target import LockWaitExceededError, SchemaChangeRefusedError
from orchestration.lakebase.workload import SyncPolicy, TableToSync, load_workload
from orchestration.output import table_preview, table_schema
from orchestration.warehouse import Warehouse

SYNC_ERRORS = (
    DuplicateKeyError,
    SchemaChangeRefusedError,
    SourceMissingError,
    LockWaitExceededError,
)


def _automation(spec: TableToSync) -> dg.AutomationCondition | None:
    if spec.scheduling_policy is SyncPolicy.TRIGGERED:  # runs when its upstream materializes
        return on_upstream_change()
    return None  # SNAPSHOT: by schedule or by hand; CONTINUOUS: by its sensor


def _shown(lakebase: Lakebase, schema: str, table: str) -> dict[str, Any]:
    """The synced table as Postgres has it: columns (with what they hold) and first rows."""
    with lakebase.connect() as conn:
        columns = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            [schema, table],
        ).fetchall()
        query = sql.SQL("SELECT * FROM {} LIMIT 5").format(sql.Identifier(schema, table))
        rows = conn.execute(query).fetchall()
    names = [name for name, _ in columns]
    frame = pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)
    return {
        "dagster/table_name": f"{schema}.{table}",
        "dagster/column_schema": table_schema(columns),
        "preview": table_preview(frame) if rows else dg.MetadataValue.text("no rows"),
        "postgres_url": dg.MetadataValue.url(lakebase.connection_url()),
    }


def _metadata(result: SyncResult, lakebase: Lakebase, schema: str) -> dict:
    return {
        **_shown(lakebase, schema, result.table),
        "postgres_table": f"{schema}.{result.table}",
        "dagster/row_count": result.target_rows,
        "scheduling_policy": result.policy.value,
        "rows_upserted": result.upserted,
        "rows_deleted": result.deleted,
        "rows_skipped_null_key": result.skipped_null_keys,
        "rows_compared": result.compared,
        "full_copy": result.full_copy,
        "sync_seconds": round(result.seconds, 3),
        "table_bytes": result.bytes,
        "columns_added": ", ".join(result.columns_added) or "none",
        "sync_id": result.sync_id,
        "swap_lock_attempts": result.lock_attempts,
        "app_sessions_ended": result.app_sessions_ended,
        "connect": dg.MetadataValue.md(f"`{lakebase.psql_command()}`"),
    }


def synced_table_args(spec: TableToSync) -> dict[str, Any]:
    """What a synced table asset is, on either engine (all but its compute and kinds)."""
    return dict(
        key=spec.asset_key,
        owners=["team:data-platform"],
        deps=[spec.source_asset_key],
        group_name="lakebase",
        pool="warehouse",  # reads (and, incrementally, writes) the DuckDB file
        automation_condition=_automation(spec),
        metadata={
            "primary_key": ", ".join(spec.primary_keys),
            "scheduling_policy": spec.scheduling_policy.value,
            "timeseries_key": spec.timeseries_key or "none",
        },
        description=f"{spec.name} kept in Postgres ({spec.scheduling_policy.value} sync).",
    )


def build_synced_table(spec: TableToSync) -> dg.AssetsDefinition:
    @dg.asset(**synced_table_args(spec), kinds={"postgres"})
    def synced(
        context: dg.AssetExecutionContext, warehouse: Warehouse, lakebase: Lakebase
    ) -> dg.MaterializeResult:
        schema = warehouse.settings().schema
        with warehouse.connect() as duck:
            try:
                result = sync_table(duck, lakebase, spec, schema)
            except SYNC_ERRORS as exc:
                raise dg.Failure(description=str(exc)) from exc
        context.log.info(
            f"{schema}.{spec.name}: {result.upserted} upserted, {result.deleted} deleted, "
            f"{result.skipped_null_keys} skipped (null key), {result.seconds:.2f}s"
        )
        return dg.MaterializeResult(metadata=_metadata(result, lakebase, schema))

    return synced


def synced_table_assets() -> list[dg.AssetsDefinition]:
    return [build_synced_table(t) for t in load_workload().delta_synchronization.tables_to_sync]
