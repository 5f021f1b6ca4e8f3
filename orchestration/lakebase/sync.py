"""Synced tables: a warehouse table kept in Postgres by SNAPSHOT or incremental sync.

Lakebase's rules: rows with a null primary key are skipped and counted; duplicate keys fail
unless a timeseries key picks the latest row; only added columns are applied in place. A sync
killed at any point leaves the target as it was or fully synced, and the next run completes it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import adbc_driver_postgresql.dbapi as adbc
import duckdb
import psycopg
from psycopg import sql

from orchestration.lakebase import target as pg
from orchestration.lakebase.postgres import Lakebase
from orchestration.lakebase.types import postgres_type
from orchestration.lakebase.workload import SyncPolicy, TableToSync
from orchestration.warehouse import create_table_like, quote, table_exists

BATCH_ROWS = 200_000  # rows per Arrow batch streamed from DuckDB to the COPY


class DuplicateKeyError(Exception):
    """Several source rows share a primary key and no timeseries key says which is current."""


class SourceMissingError(Exception):
    pass


@dataclass
class SyncResult:
    table: str
    policy: SyncPolicy
    sync_id: str
    source_rows: int = 0
    target_rows: int = 0
    upserted: int = 0
    deleted: int = 0
    skipped_null_keys: int = 0
    full_copy: bool = False
    seconds: float = 0.0
    bytes: int = 0
    columns_added: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Source:
    """The warehouse table, typed for Postgres, as SQL over DuckDB."""

    spec: TableToSync
    columns: list[pg.Column]
    select: str  # every valid row once, columns cast for Postgres

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


def _source(duck: duckdb.DuckDBPyConnection, spec: TableToSync) -> _Source:
    if not table_exists(duck, spec.name):  # tables and views alike
        raise SourceMissingError(f"warehouse table {spec.name} does not exist yet")
    described = duck.execute(f"DESCRIBE {quote(spec.name)}").fetchall()
    types = {name: kind for name, kind, *_ in described}
    missing = [k for k in [*spec.primary_keys, spec.timeseries_key] if k and k not in types]
    if missing:
        raise ValueError(f"{spec.name} has no column {', '.join(missing)} (workload config)")
    columns, expressions = [], []
    for name, kind in types.items():
        pg_kind, cast = postgres_type(kind)
        columns.append(pg.Column(name, pg_kind))
        expressions.append(f"{quote(name)}::{cast} AS {quote(name)}" if cast else quote(name))
    keys = ", ".join(map(quote, spec.primary_keys))
    not_null = " AND ".join(f"{quote(k)} IS NOT NULL" for k in spec.primary_keys)
    latest = ""
    if spec.timeseries_key:
        latest = (
            f" QUALIFY row_number() OVER (PARTITION BY {keys} "
            f"ORDER BY {quote(spec.timeseries_key)} DESC NULLS LAST) = 1"
        )
    select = f"SELECT {', '.join(expressions)} FROM {quote(spec.name)} WHERE {not_null}{latest}"
    return _Source(spec, columns, select)


def _check_keys(duck: duckdb.DuckDBPyConnection, source: _Source, result: SyncResult) -> None:
    spec = source.spec
    table = quote(spec.name)
    any_null = " OR ".join(f"{quote(k)} IS NULL" for k in spec.primary_keys)
    (nulls,) = duck.execute(f"SELECT count(*) FILTER (WHERE {any_null}) FROM {table}").fetchone()  # type: ignore[misc]
    result.skipped_null_keys = int(nulls)
    if spec.timeseries_key:
        return
    keys = ", ".join(map(quote, spec.primary_keys))
    not_null = " AND ".join(f"{quote(k)} IS NOT NULL" for k in spec.primary_keys)
    duplicates = duck.execute(
        f"SELECT {keys}, count(*) AS n FROM {table} WHERE {not_null} GROUP BY ALL "
        "HAVING count(*) > 1 ORDER BY n DESC LIMIT 5"
    ).fetchall()
    if duplicates:
        shown = "; ".join(
            ", ".join(f"{k}={v}" for k, v in zip(spec.primary_keys, row[:-1], strict=True))
            + f" ({row[-1]} rows)"
            for row in duplicates
        )
        raise DuplicateKeyError(
            f"{spec.name}: duplicate primary key {spec.primary_keys} and no timeseries_key to "
            f"pick the latest row, e.g. {shown}"
        )


def _ingest(lakebase: Lakebase, reader: Any, schema: str, table: str) -> int:
    """Binary COPY of an Arrow stream into an existing table (ADBC), committed."""
    with adbc.connect(lakebase.adbc_uri()) as conn:
        with conn.cursor() as cursor:
            rows = cursor.adbc_ingest(table, reader, mode="append", db_schema_name=schema)
        conn.commit()
    return int(rows)


def sync_table(
    duck: duckdb.DuckDBPyConnection, lakebase: Lakebase, spec: TableToSync, schema: str
) -> SyncResult:
    """Bring `schema.<name>` in Postgres up to date with the warehouse table."""
    started, clock = datetime.now(UTC), time.perf_counter()
    result = SyncResult(spec.name, spec.scheduling_policy, uuid.uuid4().hex[:12])
    source = _source(duck, spec)
    _check_keys(duck, source, result)
    with lakebase.connect() as conn:
        pg.ensure_bookkeeping(conn, schema, lakebase.app_role)
        pg.drop_leftovers(conn, schema, spec.name)
        conn.commit()
    load = _snapshot if spec.scheduling_policy is SyncPolicy.SNAPSHOT else _incremental
    load(duck, lakebase, source, schema, result, _Log(started, clock))
    return result


@dataclass(frozen=True)
class _Log:
    """Writes the sync's `_lakebase.syncs` row inside the transaction that publishes its data,
    so the log names exactly the syncs whose rows Postgres holds."""

    started: datetime
    clock: float

    def write(self, conn: psycopg.Connection, schema: str, result: SyncResult) -> None:
        result.seconds = time.perf_counter() - self.clock
        result.bytes = pg.table_bytes(conn, schema, result.table)
        conn.execute(
            "INSERT INTO _lakebase.syncs VALUES (%s, %s, %s, %s, now(), %s, %s, %s, %s, %s, "
            "%s, %s, %s)",
            [result.table, result.sync_id, result.policy.value, self.started, result.seconds,
             result.source_rows, result.target_rows, result.upserted, result.deleted,
             result.skipped_null_keys, result.full_copy, result.bytes],
        )  # fmt: skip


def _check_schema(
    conn: psycopg.Connection, schema: str, source: _Source
) -> tuple[bool, list[pg.Column]]:
    """(target exists, columns to add); refuses anything but added columns."""
    existing = pg.existing_columns(conn, schema, source.spec.name)
    if existing is None:
        return False, []
    key = pg.primary_key(conn, schema, source.spec.name)
    added = pg.additions(
        f"{schema}.{source.spec.name}", existing, key, source.columns, source.spec.primary_keys
    )
    return True, added


def _snapshot(
    duck: duckdb.DuckDBPyConnection,
    lakebase: Lakebase,
    source: _Source,
    schema: str,
    result: SyncResult,
    log: _Log,
) -> None:
    """A full copy into a staging table, swapped in atomically."""
    name, staged = source.spec.name, f"{source.spec.name}__sync_new"
    with lakebase.connect() as conn:
        _, added = _check_schema(conn, schema, source)
        pg.create_table(conn, schema, staged, source.columns, key=None)
        conn.commit()
    result.columns_added = [c.name for c in added]
    reader = duck.execute(source.select).fetch_record_batch(BATCH_ROWS)
    result.source_rows = result.upserted = _ingest(lakebase, reader, schema, staged)
    result.target_rows, result.full_copy = result.source_rows, True
    with lakebase.connect() as conn:
        pg.swap_in(conn, schema, name, staged, source.spec.primary_keys)
        pg.grant_read(conn, schema, name, lakebase.app_role)
        log.write(conn, schema, result)
        conn.commit()


STATE_VERSIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS _lakebase_state_versions (table_name VARCHAR, sync_id VARCHAR)"
)


def _state_table(name: str) -> str:
    return f"_lakebase_state_{name}"


def _incremental(
    duck: duckdb.DuckDBPyConnection,
    lakebase: Lakebase,
    source: _Source,
    schema: str,
    result: SyncResult,
    log: _Log,
) -> None:
    """Upsert the rows whose content changed since the last sync; delete the rows that went.

    What was synced is remembered in the warehouse (key and row hash per row) under the sync
    id the Postgres log holds. If the two disagree (a sync died between its Postgres commit and
    its state update, or the target was changed), this sync compares everything instead.
    """
    spec, name = source.spec, source.spec.name
    state = _state_table(name)
    row_hash = f"hash({', '.join(map(quote, source.names))})"
    duck.execute(STATE_VERSIONS_DDL)
    duck.execute(
        f"CREATE OR REPLACE TEMP TABLE _sync_current AS SELECT *, {row_hash} AS _row_hash "
        f"FROM ({source.select})"
    )
    with lakebase.connect() as conn:
        exists, added = _check_schema(conn, schema, source)
        if not exists:
            pg.create_table(conn, schema, name, source.columns, spec.primary_keys)
        pg.add_columns(conn, schema, name, added)
        synced = pg.last_sync_id(conn, name)
        conn.commit()
    result.columns_added = [c.name for c in added]
    remembered = duck.execute(
        "SELECT sync_id FROM _lakebase_state_versions WHERE table_name = ?", [name]
    ).fetchone()
    full = (
        not exists
        or bool(added)
        or remembered is None
        or remembered[0] != synced
        or not table_exists(duck, state)
    )
    columns = ", ".join(map(quote, source.names))
    match = " AND ".join(f"s.{quote(k)} = c.{quote(k)}" for k in spec.primary_keys)
    if full:
        changed_sql = f"SELECT {columns} FROM _sync_current"
        gone_sql = None
    else:
        changed_sql = (
            f"SELECT {', '.join(f'c.{quote(n)}' for n in source.names)} FROM _sync_current c "
            f"WHERE NOT EXISTS (SELECT 1 FROM {quote(state)} s WHERE {match} "
            "AND s._row_hash = c._row_hash)"
        )
        gone_sql = (
            f"SELECT {', '.join(f's.{quote(k)}' for k in spec.primary_keys)} FROM {quote(state)} s "
            f"WHERE NOT EXISTS (SELECT 1 FROM _sync_current c WHERE {match})"
        )
    changes, gone = f"{name}__changes_{result.sync_id}", f"{name}__gone_{result.sync_id}"
    key_columns = [c for c in source.columns if c.name in spec.primary_keys]
    with lakebase.connect() as conn:
        pg.create_table(conn, pg.BOOKKEEPING_SCHEMA, changes, source.columns, key=None)
        pg.create_table(conn, pg.BOOKKEEPING_SCHEMA, gone, key_columns, key=None)
        conn.commit()
    reader = duck.execute(changed_sql).fetch_record_batch(BATCH_ROWS)
    _ingest(lakebase, reader, pg.BOOKKEEPING_SCHEMA, changes)
    if gone_sql is not None:
        _ingest(lakebase, duck.execute(gone_sql).fetch_record_batch(BATCH_ROWS),
                pg.BOOKKEEPING_SCHEMA, gone)  # fmt: skip
    with lakebase.connect() as conn:  # one transaction: the table moves in one step
        result.upserted = pg.upsert(conn, schema, name, changes, source.names, spec.primary_keys)
        if full:  # everything not in the source goes
            result.deleted = pg.delete_keys(conn, schema, name, changes, spec.primary_keys, True)
        else:
            result.deleted = pg.delete_keys(conn, schema, name, gone, spec.primary_keys, False)
        for staging in (changes, gone):
            conn.execute(sql.SQL("DROP TABLE {}").format(pg.ident(pg.BOOKKEEPING_SCHEMA, staging)))
        pg.grant_read(conn, schema, name, lakebase.app_role)
        count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(pg.ident(schema, name)))
        result.target_rows = int(count.fetchone()[0])  # type: ignore[index]
        result.source_rows = int(duck.execute("SELECT count(*) FROM _sync_current").fetchone()[0])  # type: ignore[index]
        result.full_copy = full
        log.write(conn, schema, result)
        conn.commit()
    _remember(duck, state, spec.primary_keys, result.sync_id, name)


def _remember(
    duck: duckdb.DuckDBPyConnection, state: str, keys: list[str], sync_id: str, name: str
) -> None:
    """What Postgres now holds, under the sync id its log will carry."""
    select = f"SELECT {', '.join(map(quote, keys))}, _row_hash FROM _sync_current"
    duck.execute("BEGIN TRANSACTION")
    try:
        if not table_exists(duck, state):
            create_table_like(duck, state, select)
        duck.execute(f"DELETE FROM {quote(state)}")
        duck.execute(f"INSERT INTO {quote(state)} {select}")
        duck.execute("DELETE FROM _lakebase_state_versions WHERE table_name = ?", [name])
        duck.execute("INSERT INTO _lakebase_state_versions VALUES (?, ?)", [name, sync_id])
        duck.execute("COMMIT")
    except BaseException:
        duck.execute("ROLLBACK")
        raise
