"""Bronze bookkeeping tables: what each load read, what it quarantined, schema versions."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from edge_agent.contract import schema_fingerprint as fingerprint
from orchestration.bronze.targets import PartitionTarget
from orchestration.warehouse import quote, table_exists

BOOKKEEPING_DDL = (
    """CREATE TABLE IF NOT EXISTS _bronze_loads (
        table_name VARCHAR, partition_key VARCHAR, object_uri VARCHAR, etag VARCHAR,
        sha256 VARCHAR, row_count BIGINT, schema_fingerprint VARCHAR,
        loaded_at TIMESTAMPTZ, run_id VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS _bronze_quarantine (
        table_name VARCHAR, partition_key VARCHAR, object_uri VARCHAR, reason VARCHAR,
        detected_at TIMESTAMPTZ, run_id VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS _schema_versions (
        table_name VARCHAR, version INTEGER, fingerprint VARCHAR, columns VARCHAR,
        change VARCHAR, mode VARCHAR, recorded_at TIMESTAMPTZ, run_id VARCHAR)""",
)


def clear_bookkeeping(
    conn: duckdb.DuckDBPyConnection, table: str, targets: list[PartitionTarget]
) -> None:
    """Forget what earlier loads recorded for the targets (the load records them anew)."""
    for target in targets:
        for bookkeeping in ("_bronze_loads", "_bronze_quarantine"):
            conn.execute(
                f"DELETE FROM {bookkeeping} WHERE table_name = ? AND partition_key = ?",
                [table, target.partition_key],
            )


def delete_earlier_rows(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    targets: list[PartitionTarget],
    ingested_at: datetime,
) -> None:
    """Remove the targets' rows from earlier loads, after this load inserted its own.

    Last, not first: DuckDB 1.5.5 refuses to commit a transaction that deletes rows and then
    adds a column to the same table ("another transaction has altered this table"), and a load
    adds columns (addNewColumns) as it meets them.
    """
    if not table_exists(conn, table):
        return
    for target in targets:
        where, params = partition_predicate(target)
        conn.execute(
            f"DELETE FROM {quote(table)} WHERE {where} AND _ingested_at IS DISTINCT FROM ?",
            [*params, ingested_at],
        )


def partition_predicate(target: PartitionTarget) -> tuple[str, list[Any]]:
    if target.region is None:
        return "_partition_hour = ?", [target.hour]
    return "_partition_hour = ? AND _region = ?", [target.hour, target.region]


def record_schema_version(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    schema: pa.Schema | None,
    mode: str,
    run_id: str,
) -> int:
    last = conn.execute(
        "SELECT version, fingerprint FROM _schema_versions WHERE table_name = ? "
        "ORDER BY version DESC LIMIT 1",
        [table],
    ).fetchone()
    if schema is None:
        return int(last[0]) if last else 0
    current = fingerprint(schema)
    if last and last[1] == current:
        return int(last[0])
    version = (int(last[0]) if last else 0) + 1
    change = "created"
    if last is not None:
        previous = conn.execute(
            "SELECT columns FROM _schema_versions WHERE table_name = ? AND version = ?",
            [table, last[0]],
        ).fetchone()
        old_names = {c["name"] for c in json.loads(previous[0])} if previous else set()
        added = [f.name for f in schema if f.name not in old_names]
        removed = sorted(old_names - set(schema.names))
        change = (
            "; ".join(
                part
                for part in (
                    f"added {', '.join(added)}" if added else "",
                    f"removed {', '.join(removed)}" if removed else "",
                )
                if part
            )
            or "column types changed"
        )
    columns = json.dumps([{"name": f.name, "type": str(f.type)} for f in schema])
    conn.execute(
        "INSERT INTO _schema_versions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [table, version, current, columns, change, mode, datetime.now(UTC), run_id],
    )
    return version


def schema_history(conn: duckdb.DuckDBPyConnection, table: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT version, change, mode, recorded_at, columns FROM _schema_versions "
        "WHERE table_name = ? ORDER BY version",
        [table],
    ).fetchall()
