"""The Postgres side of a synced table: DDL, Lakebase's schema rules, swaps, upserts, the log."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from orchestration.lakebase.workload import TableIndex

BOOKKEEPING_SCHEMA = "_lakebase"
# One row per published sync, with the environment schema it synced into.
SYNC_LOG_DDL = """
    CREATE TABLE IF NOT EXISTS _lakebase.syncs (
        table_name text NOT NULL, sync_id text NOT NULL, policy text NOT NULL,
        started_at timestamptz NOT NULL, finished_at timestamptz NOT NULL,
        seconds double precision NOT NULL, source_rows bigint NOT NULL, target_rows bigint NOT NULL,
        upserted bigint NOT NULL, deleted bigint NOT NULL, skipped_null_keys bigint NOT NULL,
        full_copy boolean NOT NULL, bytes bigint NOT NULL, schema_name text NOT NULL,
        PRIMARY KEY (table_name, sync_id))
"""
# Which environment schema and table each staging table in `_lakebase` belongs to: the cleanup
# of leftovers reads this, never a pattern over names that several environments share.
STAGING_DDL = """
    CREATE TABLE IF NOT EXISTS _lakebase.staging (
        staging_table text PRIMARY KEY, schema_name text NOT NULL, table_name text NOT NULL,
        sync_id text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())
"""
MAX_IDENTIFIER_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1; longer names are silently cut


class SchemaChangeRefusedError(Exception):
    """Lakebase applies only additive schema changes in place; this one needs a new table."""


@dataclass(frozen=True)
class Column:
    name: str
    pg_type: str


def ident(*parts: str) -> sql.Composable:
    return sql.Identifier(*parts)


def ensure_bookkeeping(conn: psycopg.Connection, schema: str) -> None:
    """The environment's schema, the sync log and the staging register (created once)."""
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident(schema)))
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident(BOOKKEEPING_SCHEMA)))
    conn.execute(SYNC_LOG_DDL)
    conn.execute(STAGING_DDL)
    _add_schema_to_sync_log(conn)


def _add_schema_to_sync_log(conn: psycopg.Connection) -> None:
    """A log from before environments were told apart gets its `schema_name` column; its old
    rows get '' (no environment), so each environment's next incremental sync compares every
    row once instead of trusting another environment's sync id."""
    has_column = conn.execute(
        "SELECT 1 FROM pg_attribute WHERE attrelid = '_lakebase.syncs'::regclass "
        "AND attname = 'schema_name' AND NOT attisdropped"
    ).fetchone()
    if has_column is None:  # ALTER TABLE locks the log: only when the column is missing
        conn.execute("ALTER TABLE _lakebase.syncs ADD COLUMN schema_name text NOT NULL DEFAULT ''")
        conn.execute("ALTER TABLE _lakebase.syncs ALTER COLUMN schema_name DROP DEFAULT")


def existing_columns(conn: psycopg.Connection, schema: str, table: str) -> list[Column] | None:
    """The table's columns in order, or None if it does not exist."""
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND c.relkind = 'r' AND a.attnum > 0 "
        "AND NOT a.attisdropped ORDER BY a.attnum",
        [schema, table],
    ).fetchall()
    return [Column(name, kind) for name, kind in rows] or None


def primary_key(conn: psycopg.Connection, schema: str, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey) "
        "WHERE n.nspname = %s AND c.relname = %s AND i.indisprimary "
        "ORDER BY array_position(i.indkey, a.attnum)",
        [schema, table],
    ).fetchall()
    return [r[0] for r in rows]


def additions(
    qualified: str,
    existing: list[Column],
    existing_key: list[str],
    wanted: list[Column],
    key: list[str],
) -> list[Column]:
    """The columns to add in place; any other difference is refused with what to do."""
    have = {c.name: c.pg_type for c in existing}
    want = {c.name: c.pg_type for c in wanted}
    problems = [f"column {n} removed" for n in have if n not in want]
    problems += [
        f"column {n} changes type from {have[n]} to {want[n]}"
        for n in want
        if n in have and have[n] != want[n]
    ]
    if existing_key != key:
        problems.append(f"primary key changes from {existing_key} to {key}")
    if problems:
        raise SchemaChangeRefusedError(
            f"synced table {qualified} cannot take this change in place ({'; '.join(problems)}). "
            "Lakebase applies only added columns to a synced table: drop it "
            f"(DROP TABLE {qualified}) and the next sync recreates it."
        )
    return [c for c in wanted if c.name not in have]


def create_table(
    conn: psycopg.Connection, schema: str, table: str, columns: list[Column], key: list[str] | None
) -> None:
    parts = [
        sql.SQL("{} {}").format(ident(c.name), sql.SQL(c.pg_type)) for c in columns
    ]  # pg_type comes from our own fixed mapping, never from data
    if key:
        parts.append(sql.SQL("PRIMARY KEY ({})").format(sql.SQL(", ").join(map(ident, key))))
    conn.execute(
        sql.SQL("CREATE TABLE {} ({})").format(ident(schema, table), sql.SQL(", ").join(parts))
    )


def add_columns(conn: psycopg.Connection, schema: str, table: str, columns: list[Column]) -> None:
    for c in columns:
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                ident(schema, table), ident(c.name), sql.SQL(c.pg_type)
            )
        )


def staging_name(kind: str, sync_id: str, schema: str, table: str) -> str:
    """A staging table's name in `_lakebase`: unique by its kind and sync id, which come first,
    then the environment and table for a person listing them; cut to PostgreSQL's limit here,
    so the register holds the name exactly as PostgreSQL stores it."""
    name = f"{kind}_{sync_id}_{schema}_{table}".encode()[:MAX_IDENTIFIER_BYTES]
    return name.decode(errors="ignore")


def create_staging(
    conn: psycopg.Connection,
    schema: str,
    table: str,
    sync_id: str,
    kind: str,
    columns: list[Column],
) -> str:
    """An unkeyed staging table in `_lakebase` for one sync of `schema.table`, registered in
    the caller's transaction (a killed sync's leftovers are then found exactly); its name."""
    staged = staging_name(kind, sync_id, schema, table)
    create_table(conn, BOOKKEEPING_SCHEMA, staged, columns, key=None)
    conn.execute(
        "INSERT INTO _lakebase.staging (staging_table, schema_name, table_name, sync_id) "
        "VALUES (%s, %s, %s, %s)",
        [staged, schema, table, sync_id],
    )
    return staged


def drop_staging(conn: psycopg.Connection, staged: str) -> None:
    """A staging table of `_lakebase` and its registration, in the caller's transaction."""
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident(BOOKKEEPING_SCHEMA, staged)))
    conn.execute("DELETE FROM _lakebase.staging WHERE staging_table = %s", [staged])


def drop_leftovers(conn: psycopg.Connection, schema: str, table: str) -> None:
    """Staging tables a killed sync of `schema.table` left behind, and only those: other
    environments' and other tables' staging tables are never touched, whatever their names."""
    conn.execute(
        sql.SQL("DROP TABLE IF EXISTS {}").format(ident(schema, f"{table}__sync_new"))
    )  # a SNAPSHOT stages inside the environment's own schema
    registered = conn.execute(
        "SELECT staging_table FROM _lakebase.staging WHERE schema_name = %s AND table_name = %s",
        [schema, table],
    ).fetchall()
    for (staged,) in registered:
        drop_staging(conn, staged)


def add_primary_key(
    conn: psycopg.Connection, schema: str, table: str, key: list[str], index_memory: str
) -> None:
    """Build the key of a loaded staging table; `index_memory` is this build's sort memory."""
    conn.execute("SELECT set_config('maintenance_work_mem', %s, true)", [index_memory])
    conn.execute(
        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY ({})").format(
            ident(schema, table), ident(f"{table}_pkey"), sql.SQL(", ").join(map(ident, key))
        )
    )


class LockWaitExceededError(Exception):
    """Readers kept the synced table locked through every bounded attempt of the swap."""


def with_lock_timeout(
    conn: psycopg.Connection,
    timeout_ms: int,
    attempts: int,
    what: str,
    work: Callable[[], None],
    before_attempt: Callable[[], None] | None = None,
) -> int:
    """Run `work` in a transaction that waits at most `timeout_ms` for a lock; retried with a
    short backoff, at most `attempts` times. Readers queued behind the waiting lock request wait
    no longer than the timeout. `before_attempt` runs first in each attempt's transaction (the
    sync ends overdue application sessions there). Returns the attempts used."""
    for attempt in range(1, attempts + 1):
        try:
            if before_attempt is not None:
                before_attempt()
            conn.execute("SELECT set_config('lock_timeout', %s, true)", [f"{int(timeout_ms)}ms"])
            work()
            return attempt
        except psycopg.errors.LockNotAvailable:
            conn.rollback()
            time.sleep(min(2.0, 0.1 * 2**attempt))
    raise LockWaitExceededError(
        f"{what}: a reader held the table through {attempts} attempts of {timeout_ms} ms "
        "(a session idle in a transaction?); the old table stays, the next sync tries again"
    )


def create_indexes(
    conn: psycopg.Connection,
    schema: str,
    table: str,
    indexes: list[TableIndex],
    index_memory: str,
    named_for: str | None = None,
) -> list[str]:
    """The workload's indexes on `table` (built if missing), named as for `named_for` (the
    table a staging table becomes); returns the names built."""
    conn.execute("SELECT set_config('maintenance_work_mem', %s, true)", [index_memory])
    built = []
    for index in indexes:
        name = index.name_for(named_for or table)
        if named_for:
            name = f"{name}_new"
        include = (
            sql.SQL(" INCLUDE ({})").format(sql.SQL(", ").join(map(ident, index.include)))
            if index.include
            else sql.SQL("")
        )
        conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({}){}").format(
                ident(name),
                ident(schema, table),
                sql.SQL(", ").join(
                    sql.SQL("{} {}").format(ident(column), sql.SQL(order))  # order: validated
                    for column, order in index.ordered_columns()
                ),
                include,
            )
        )
        built.append(name)
    return built


def vacuum_analyze(conn: psycopg.Connection, schema: str, table: str) -> None:
    """Statistics for the planner, and the visibility map and hint bits set once, before the
    table is swapped in: index-only scans work at once, and readers never rewrite pages."""
    autocommit = conn.autocommit
    conn.autocommit = True  # VACUUM cannot run inside a transaction
    try:
        conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(ident(schema, table)))
    finally:
        conn.autocommit = autocommit


def swap_in(
    conn: psycopg.Connection,
    schema: str,
    table: str,
    staged: str,
    indexes: list[TableIndex] = (),  # type: ignore[assignment]
) -> None:
    """Replace `table` by the keyed, indexed `staged` in the caller's transaction: a reader sees
    one or the other, and waits only for the drop and the renames."""
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident(schema, table)))
    conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(ident(schema, staged), ident(table)))
    conn.execute(
        sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(
            ident(schema, table), ident(f"{staged}_pkey"), ident(f"{table}_pkey")
        )
    )
    for index in indexes:
        name = index.name_for(table)
        conn.execute(
            sql.SQL("ALTER INDEX {} RENAME TO {}").format(ident(schema, f"{name}_new"), ident(name))
        )


def upsert(
    conn: psycopg.Connection,
    schema: str,
    table: str,
    changes: str,
    columns: list[str],
    key: list[str],
) -> int:
    """Rows of `changes` into `table` by primary key; rows already equal are left alone."""
    cols = sql.SQL(", ").join(map(ident, columns))
    rest = [c for c in columns if c not in key]
    if rest:
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = EXCLUDED.{}").format(ident(c), ident(c)) for c in rest
        )
        differs = sql.SQL("ROW({}) IS DISTINCT FROM ROW({})").format(
            sql.SQL(", ").join(sql.SQL("t.{}").format(ident(c)) for c in rest),
            sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(ident(c)) for c in rest),
        )
        action = sql.SQL("DO UPDATE SET {} WHERE {}").format(assignments, differs)
    else:
        action = sql.SQL("DO NOTHING")
    cursor = conn.execute(
        sql.SQL("INSERT INTO {} AS t ({}) SELECT {} FROM {} ON CONFLICT ({}) {}").format(
            ident(schema, table),
            cols,
            cols,
            ident(BOOKKEEPING_SCHEMA, changes),
            sql.SQL(", ").join(map(ident, key)),
            action,
        )
    )
    return cursor.rowcount


def delete_keys(
    conn: psycopg.Connection, schema: str, table: str, keys_table: str, key: list[str], keep: bool
) -> int:
    """Delete rows whose key is in `keys_table` (keep=False) or is not in it (keep=True)."""
    match = sql.SQL(" AND ").join(sql.SQL("k.{0} = t.{0}").format(ident(c)) for c in key)
    exists = sql.SQL("NOT EXISTS" if keep else "EXISTS")
    cursor = conn.execute(
        sql.SQL("DELETE FROM {} t WHERE {} (SELECT 1 FROM {} k WHERE {})").format(
            ident(schema, table), exists, ident(BOOKKEEPING_SCHEMA, keys_table), match
        )
    )
    return cursor.rowcount


def grant_read(conn: psycopg.Connection, schema: str, table: str, app_role: str) -> None:
    conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(ident(schema, table), ident(app_role)))


def table_bytes(conn: psycopg.Connection, schema: str, table: str) -> int:
    row = conn.execute(
        "SELECT coalesce(pg_total_relation_size(to_regclass(%s)), 0)",
        [f'"{schema}"."{table}"'],
    ).fetchone()
    return int(row[0]) if row else 0


def is_empty(conn: psycopg.Connection, schema: str, table: str) -> bool:
    query = sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(ident(schema, table))
    return bool(conn.execute(query).fetchone()[0])  # type: ignore[index]


def last_sync_id(conn: psycopg.Connection, schema: str, table: str) -> str | None:
    """The sync that last published `schema.table` (never another environment's)."""
    row = conn.execute(
        "SELECT sync_id FROM _lakebase.syncs WHERE schema_name = %s AND table_name = %s "
        "ORDER BY finished_at DESC LIMIT 1",
        [schema, table],
    ).fetchone()
    return row[0] if row else None


def sync_history(conn: psycopg.Connection, schema: str) -> list[tuple]:
    """Per table and policy of `schema`: syncs, mean and max seconds, rows changed per second."""
    logged = conn.execute(
        "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('_lakebase.syncs') "
        "AND attname = 'schema_name' AND NOT attisdropped"
    ).fetchone()
    if logged is None:  # no sync yet, or none since environments were told apart
        return []
    return conn.execute(
        "SELECT table_name, policy, count(*), avg(seconds), max(seconds), "
        "sum(upserted + deleted) / nullif(sum(seconds), 0) FROM _lakebase.syncs "
        "WHERE schema_name = %s GROUP BY 1, 2 ORDER BY 1",
        [schema],
    ).fetchall()
