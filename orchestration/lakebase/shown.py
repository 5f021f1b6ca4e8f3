"""What a local synced table shows in the UI after a sync: Postgres' view of it and the sync's
figures."""

from __future__ import annotations

from typing import Any

import dagster as dg
import polars as pl
from psycopg import sql

from orchestration.lakebase.postgres import Lakebase
from orchestration.lakebase.sync import DuplicateKeyError, SourceMissingError, SyncResult
from orchestration.lakebase.target import LockWaitExceededError, SchemaChangeRefusedError
from orchestration.output import table_preview, table_schema

SYNC_ERRORS = (
    DuplicateKeyError,
    SchemaChangeRefusedError,
    SourceMissingError,
    LockWaitExceededError,
)


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


def sync_metadata(result: SyncResult, lakebase: Lakebase, schema: str) -> dict[str, Any]:
    return {
        **_shown(lakebase, schema, result.table),
        "postgres_table": f"{schema}.{result.table}",
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
