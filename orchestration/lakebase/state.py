"""What an incrementally synced table holds, remembered in the warehouse.

Per synced row: its primary key, a hash of the row and (when the source has a change feed) its
partition value, under the sync id that Postgres' `_lakebase.syncs` log carries; and which
change-feed entries the sync has applied. A sync trusts this only when its sync id is the one
Postgres last logged; otherwise it compares every row.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from orchestration.warehouse import create_table_like, quote, table_exists

VERSIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS _lakebase_state_versions (table_name VARCHAR, sync_id VARCHAR)"
)
APPLIED = "_lakebase_applied_changes"
APPLIED_DDL = f"CREATE TABLE IF NOT EXISTS {APPLIED} (consumer VARCHAR, change_id VARCHAR)"
PART = "_part"  # the state's copy of the feed's partition column


def state_table(name: str) -> str:
    return f"_lakebase_state_{name}"


def ensure(duck: duckdb.DuckDBPyConnection) -> None:
    duck.execute(VERSIONS_DDL)
    duck.execute(APPLIED_DDL)


def trusted(duck: duckdb.DuckDBPyConnection, name: str, synced: str | None) -> bool:
    """True when the remembered state is what Postgres holds: its sync id is the last one
    Postgres logged for the table."""
    remembered = duck.execute(
        "SELECT sync_id FROM _lakebase_state_versions WHERE table_name = ?", [name]
    ).fetchone()
    return (
        remembered is not None and remembered[0] == synced and table_exists(duck, state_table(name))
    )


def has_partitions(duck: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the state records each row's partition (it does once the source has a feed)."""
    columns = duck.execute(f"DESCRIBE {quote(state_table(name))}").fetchall()
    return any(row[0] == PART for row in columns)


def key_match(keys: list[str], left: str, right: str) -> str:
    """SQL: rows `left` and `right` (aliases) have the same primary key."""
    return " AND ".join(f"{left}.{quote(k)} = {right}.{quote(k)}" for k in keys)


def remember(
    duck: duckdb.DuckDBPyConnection,
    name: str,
    keys: list[str],
    sync_id: str,
    rebuild: bool,
    applied: list[str],
) -> None:
    """Record what Postgres now holds under `sync_id`: when every row was compared (`rebuild`),
    all of `_sync_current`; else the changed rows' new hashes, without the rows that went; and
    the change-feed entries applied."""
    state = state_table(name)
    duck.execute("BEGIN TRANSACTION")
    try:
        if rebuild:  # recreated: the key or partition columns may differ from the last time
            select = "SELECT * FROM _sync_current"
            duck.execute(f"DROP TABLE IF EXISTS {quote(state)}")
            create_table_like(duck, state, select)
            duck.execute(f"INSERT INTO {quote(state)} {select}")
            duck.execute(f"DELETE FROM {APPLIED} WHERE consumer = ?", [name])
        else:
            for moved in ("_sync_changed", "_sync_gone"):
                duck.execute(
                    f"DELETE FROM {quote(state)} s WHERE EXISTS "
                    f"(SELECT 1 FROM {moved} k WHERE {key_match(keys, 'k', 's')})"
                )
            duck.execute(
                f"INSERT INTO {quote(state)} SELECT c.* FROM _sync_current c "
                f"SEMI JOIN _sync_changed k ON {key_match(keys, 'k', 'c')}"
            )
        if applied:
            duck.register("_sync_applied", pa.table({"change_id": applied}))
            duck.execute(f"INSERT INTO {APPLIED} SELECT ?, change_id FROM _sync_applied", [name])
            duck.unregister("_sync_applied")
        duck.execute("DELETE FROM _lakebase_state_versions WHERE table_name = ?", [name])
        duck.execute("INSERT INTO _lakebase_state_versions VALUES (?, ?)", [name, sync_id])
        duck.execute("COMMIT")
    except BaseException:
        duck.execute("ROLLBACK")
        raise
