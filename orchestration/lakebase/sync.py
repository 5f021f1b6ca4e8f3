"""Synced tables: a warehouse table kept in Postgres by SNAPSHOT or incremental sync.

Lakebase's rules: rows with a null primary key are skipped and counted; duplicate keys fail
unless a timeseries key picks the latest row; only added columns are applied in place. A sync
killed at any point leaves the target as it was or fully synced, and the next run completes it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import psycopg
from psycopg import sql

from orchestration import changes
from orchestration.lakebase import roles, state
from orchestration.lakebase import target as pg
from orchestration.lakebase.copy import copy_arrow
from orchestration.lakebase.postgres import Lakebase
from orchestration.lakebase.types import postgres_type
from orchestration.lakebase.workload import SyncPolicy, TableToSync
from orchestration.warehouse import quote, table_exists

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
    compared: int = 0  # source rows hashed and compared (incremental; all unless a feed scopes)
    full_copy: bool = False
    seconds: float = 0.0
    bytes: int = 0
    columns_added: list[str] = field(default_factory=list)
    lock_attempts: int = 1  # tries the swap needed to take its lock (bounded wait each)
    app_sessions_ended: int = 0  # application sessions ended for being past their limits


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


def _ingest(lakebase: Lakebase, duck: duckdb.DuckDBPyConnection, select: str, schema: str,
            table: str) -> int:  # fmt: skip
    """The rows of `select` appended to `schema.table` by binary COPY, committed."""
    reader = duck.execute(select).to_arrow_reader(BATCH_ROWS)
    return copy_arrow(lakebase.adbc_uri(), reader, schema, table, lakebase.copy_connections)


def sync_table(
    duck: duckdb.DuckDBPyConnection, lakebase: Lakebase, spec: TableToSync, schema: str
) -> SyncResult:
    """Bring `schema.<name>` in Postgres up to date with the warehouse table."""
    started, clock = datetime.now(UTC), time.perf_counter()
    result = SyncResult(spec.name, spec.scheduling_policy, uuid.uuid4().hex[:12])
    source = _source(duck, spec)
    _check_keys(duck, source, result)
    with lakebase.connect() as conn:
        pg.ensure_bookkeeping(conn, schema)
        roles.ensure_app_role(
            conn,
            lakebase.app_role_for(schema),
            schema,
            lakebase.session_limits(),
            lakebase.owns_the_server(),
            shared_role=lakebase.app_role,
        )
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
            "INSERT INTO _lakebase.syncs (schema_name, table_name, sync_id, policy, started_at, "
            "finished_at, seconds, source_rows, target_rows, upserted, deleted, "
            "skipped_null_keys, full_copy, bytes) VALUES (%s, %s, %s, %s, %s, now(), %s, %s, "
            "%s, %s, %s, %s, %s, %s)",
            [schema, result.table, result.sync_id, result.policy.value, self.started,
             result.seconds, result.source_rows, result.target_rows, result.upserted,
             result.deleted, result.skipped_null_keys, result.full_copy, result.bytes],
        )  # fmt: skip


def _bounded(
    conn: psycopg.Connection,
    lakebase: Lakebase,
    schema: str,
    result: SyncResult,
    what: str,
    work: Callable[[], None],
) -> int:
    """`work`, which takes a lock readers may hold, with bounded waits; before each attempt the
    environment's application sessions past their limits are ended (see `roles`)."""
    role, limits = lakebase.app_role_for(schema), lakebase.session_limits()

    def end_overdue() -> None:
        result.app_sessions_ended += roles.end_overdue_sessions(conn, role, limits)

    return pg.with_lock_timeout(
        conn, lakebase.swap_lock_timeout_ms, lakebase.swap_attempts, what, work, end_overdue
    )


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
    with lakebase.connect() as conn:
        _, added = _check_schema(conn, schema, source)
    result.columns_added = [c.name for c in added]
    _copy_and_swap(duck, lakebase, source, schema, result, log)


def _copy_and_swap(
    duck: duckdb.DuckDBPyConnection,
    lakebase: Lakebase,
    source: _Source,
    schema: str,
    result: SyncResult,
    log: _Log,
) -> None:
    """Every source row into `<name>__sync_new`, keyed, then swapped in for the target."""
    name, staged = source.spec.name, f"{source.spec.name}__sync_new"
    with lakebase.connect() as conn:
        pg.create_table(conn, schema, staged, source.columns, key=None)
        conn.commit()
    result.source_rows = result.upserted = _ingest(lakebase, duck, source.select, schema, staged)
    result.target_rows, result.full_copy = result.source_rows, True
    # Key and indexes are built before the swap, off the readers' path.
    with lakebase.connect() as conn:
        pg.add_primary_key(conn, schema, staged, source.spec.primary_keys, lakebase.index_memory)
        pg.create_indexes(
            conn, schema, staged, source.spec.indexes, lakebase.index_memory, named_for=name
        )
        conn.commit()
        pg.vacuum_analyze(conn, schema, staged)
    with lakebase.connect() as conn:

        def swap() -> None:
            pg.swap_in(conn, schema, name, staged, source.spec.indexes)
            pg.grant_read(conn, schema, name, lakebase.app_role_for(schema))
            log.write(conn, schema, result)
            conn.commit()

        result.lock_attempts = _bounded(conn, lakebase, schema, result, f"{schema}.{name}", swap)


def _apply(
    duck: duckdb.DuckDBPyConnection,
    lakebase: Lakebase,
    source: _Source,
    schema: str,
    result: SyncResult,
    log: _Log,
    full: bool,
    scope: changes.ChangeScope | None,
    part: str | None,
) -> None:
    """Stage the changed rows and the gone keys in Postgres, then upsert and delete them in
    one transaction: the table moves in one step."""
    spec, name = source.spec, source.spec.name
    key_columns = [c for c in source.columns if c.name in spec.primary_keys]
    with lakebase.connect() as conn:
        changed = pg.create_staging(conn, schema, name, result.sync_id, "changes", source.columns)
        gone = pg.create_staging(conn, schema, name, result.sync_id, "gone", key_columns)
        conn.commit()
    if full:
        _ingest(lakebase, duck, source.select, pg.BOOKKEEPING_SCHEMA, changed)
    else:
        in_scope = scope.predicate(f"r.{quote(part)}") if scope and part else "true"
        changed_rows = (
            f"SELECT r.* FROM ({source.select}) r SEMI JOIN _sync_changed k "
            f"ON {_match(spec, 'k', 'r')} WHERE {in_scope}"
        )
        _ingest(lakebase, duck, changed_rows, pg.BOOKKEEPING_SCHEMA, changed)
        keys = ", ".join(map(quote, spec.primary_keys))
        _ingest(lakebase, duck, f"SELECT {keys} FROM _sync_gone", pg.BOOKKEEPING_SCHEMA, gone)
    with lakebase.connect() as conn:
        result.upserted = pg.upsert(conn, schema, name, changed, source.names, spec.primary_keys)
        if full:  # everything not in the source goes
            result.deleted = pg.delete_keys(conn, schema, name, changed, spec.primary_keys, True)
        else:
            result.deleted = pg.delete_keys(conn, schema, name, gone, spec.primary_keys, False)
        for staged in (changed, gone):
            pg.drop_staging(conn, staged)
        pg.grant_read(conn, schema, name, lakebase.app_role_for(schema))
        count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(pg.ident(schema, name)))
        result.target_rows = int(count.fetchone()[0])  # type: ignore[index]
        result.full_copy = full
        log.write(conn, schema, result)
        conn.commit()


def _incremental(
    duck: duckdb.DuckDBPyConnection,
    lakebase: Lakebase,
    source: _Source,
    schema: str,
    result: SyncResult,
    log: _Log,
) -> None:
    """Upsert the rows whose content changed since the last sync; delete the rows that went.

    What Postgres holds is remembered in the warehouse (`state`): per row its key and hash.
    Only keys and hashes are computed for the rows compared; full rows are read for changes
    only. With a change feed on the source, only the partitions rewritten since the last sync
    are compared (row counts must still agree, or everything is compared). Without the state
    (first sync, or a sync died between its Postgres commit and its state update), everything
    is compared; an empty or new target is loaded like a snapshot.
    """
    spec, name = source.spec, source.spec.name
    state.ensure(duck)
    with lakebase.connect() as conn:
        exists, added = _check_schema(conn, schema, source)
        if added:  # ALTER TABLE waits for readers' locks: bounded, like a swap

            def add() -> None:
                pg.add_columns(conn, schema, name, added)
                conn.commit()

            _bounded(conn, lakebase, schema, result, f"{schema}.{name} (adding columns)", add)
        if exists:  # indexes declared since the table was created (readers are not blocked)
            pg.create_indexes(conn, schema, name, spec.indexes, lakebase.index_memory)
        synced = pg.last_sync_id(conn, schema, name) if exists else None
        empty = not exists or pg.is_empty(conn, schema, name)
        conn.commit()
    result.columns_added = [c.name for c in added]
    duck.execute("BEGIN TRANSACTION")  # hashes and rows from one snapshot of the source
    try:
        part = changes.feed_column(duck, name)
        part = part if part in source.names else None
        full = empty or bool(added) or not state.trusted(duck, name, synced)
        scoped = not full and part is not None and state.has_partitions(duck, name)
        scope = changes.pending(duck, name, part, state.APPLIED, name) if scoped else None
        _compare(duck, source, part, scope, full)
        result.compared = result.source_rows = _count(duck, "SELECT count(*) FROM _sync_current")
        if scope is not None:  # only the feed's hours were compared: do the counts agree?
            result.source_rows = _count(duck, f"SELECT count(*) FROM ({source.select})")
            if _expected_rows(duck, spec) != result.source_rows:
                full, scope = True, None  # changed outside the feed: compare everything
                _compare(duck, source, part, None, full)
                result.compared = result.source_rows
        applied = list(scope.change_ids) if scope else changes.all_change_ids(duck, name)
        if empty:
            _copy_and_swap(duck, lakebase, source, schema, result, log)
        else:
            _apply(duck, lakebase, source, schema, result, log, full, scope, part)
        duck.execute("COMMIT")
    except BaseException:
        duck.execute("ROLLBACK")
        raise
    rebuild = scope is None  # every row was compared: the state is rebuilt from them
    state.remember(duck, name, spec.primary_keys, result.sync_id, rebuild, applied)


def _compare(
    duck: duckdb.DuckDBPyConnection,
    source: _Source,
    part: str | None,
    scope: changes.ChangeScope | None,
    full: bool,
) -> None:
    """`_sync_current`: key, partition and hash of the source rows in scope (all without one);
    unless `full`, the keys that changed (`_sync_changed`) or went (`_sync_gone`) since the
    remembered state."""
    spec = source.spec
    keys = ", ".join(map(quote, spec.primary_keys))
    partition = f", {quote(part)} AS {state.PART}" if part else ""
    in_scope = scope.predicate(quote(part)) if scope and part else "true"
    row_hash = f"hash({', '.join(map(quote, source.names))})"
    duck.execute(
        f"CREATE OR REPLACE TEMP TABLE _sync_current AS SELECT {keys}{partition}, "
        f"{row_hash} AS _row_hash FROM ({source.select}) WHERE {in_scope}"
    )
    if full:
        return
    remembered = quote(state.state_table(spec.name))
    duck.execute(
        f"CREATE OR REPLACE TEMP TABLE _sync_changed AS SELECT {_keys(spec, 'c')} "
        f"FROM _sync_current c ANTI JOIN {remembered} s "
        f"ON {_match(spec, 's', 'c')} AND s._row_hash = c._row_hash"
    )
    was_in_scope = scope.predicate(f"s.{state.PART}") if scope and part else "true"
    duck.execute(
        f"CREATE OR REPLACE TEMP TABLE _sync_gone AS SELECT {_keys(spec, 's')} "
        f"FROM {remembered} s ANTI JOIN _sync_current c ON {_match(spec, 'c', 's')} "
        f"WHERE {was_in_scope}"
    )


def _expected_rows(duck: duckdb.DuckDBPyConnection, spec: TableToSync) -> int:
    """Rows the target holds after applying the changes found: what the state holds, less
    the rows gone, plus the new keys."""
    remembered = quote(state.state_table(spec.name))
    held = _count(duck, f"SELECT count(*) FROM {remembered}")
    gone = _count(duck, "SELECT count(*) FROM _sync_gone")
    new = _count(
        duck,
        f"SELECT count(*) FROM _sync_changed k ANTI JOIN {remembered} s "
        f"ON {_match(spec, 's', 'k')}",
    )
    return held - gone + new


def _count(duck: duckdb.DuckDBPyConnection, query: str) -> int:
    return int(duck.execute(query).fetchone()[0])  # type: ignore[index]


def _keys(spec: TableToSync, alias: str) -> str:
    return ", ".join(f"{alias}.{quote(k)}" for k in spec.primary_keys)


def _match(spec: TableToSync, left: str, right: str) -> str:
    return state.key_match(spec.primary_keys, left, right)
