"""A change feed for warehouse tables, like Delta's Change Data Feed for Lakebase syncs.

A table has a feed once a writer records, in the transaction that rewrites them, the ranges of
its partition column that it replaced (the hourly gold tables do). A consumer (an incremental
sync) then compares only the rows in the ranges it has not applied yet, instead of the whole
table. Every writer of a table with a feed must record its changes; a sync still checks row
counts and falls back to a full comparison when they disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

from orchestration.warehouse import quote, table_exists

FEEDS_DDL = "CREATE TABLE IF NOT EXISTS _change_feeds (table_name VARCHAR, column_name VARCHAR)"
CHANGES_DDL = (
    "CREATE TABLE IF NOT EXISTS _table_changes (change_id VARCHAR, table_name VARCHAR, "
    "range_start TIMESTAMPTZ, range_end TIMESTAMPTZ, changed_at TIMESTAMPTZ)"
)


def record_change(
    conn: duckdb.DuckDBPyConnection, table: str, column: str, start: datetime, end: datetime
) -> None:
    """In the writer's transaction: rows of `table` with `start <= column < end` were replaced."""
    conn.execute(FEEDS_DDL)
    conn.execute(CHANGES_DDL)
    conn.execute(
        "INSERT INTO _change_feeds SELECT ?, ? WHERE NOT EXISTS "
        "(SELECT 1 FROM _change_feeds WHERE table_name = ?)",
        [table, column, table],
    )
    conn.execute(
        "INSERT INTO _table_changes VALUES (uuid()::VARCHAR, ?, ?, ?, now())", [table, start, end]
    )


@dataclass(frozen=True)
class ChangeScope:
    """The feed entries a consumer has not applied: which rows it must compare."""

    column: str
    ranges: tuple[tuple[datetime, datetime], ...]
    change_ids: tuple[str, ...]

    def predicate(self, column_sql: str) -> str:
        """SQL true for the rows in scope. The values are timestamps from the feed, written
        as literals so DuckDB can skip row groups by their min/max; an envelope first."""
        if not self.ranges:
            return "false"
        low = min(start for start, _ in self.ranges)
        high = max(end for _, end in self.ranges)
        each = " OR ".join(
            f"({column_sql} >= {_timestamp(s)} AND {column_sql} < {_timestamp(e)})"
            for s, e in _merged(self.ranges)
        )
        envelope = f"{column_sql} >= {_timestamp(low)} AND {column_sql} < {_timestamp(high)}"
        return f"({envelope} AND ({each}))"


def feed_column(conn: duckdb.DuckDBPyConnection, table: str) -> str | None:
    """The partition column `table`'s feed records, or None if it has no feed."""
    if not table_exists(conn, "_change_feeds"):
        return None
    row = conn.execute(
        "SELECT column_name FROM _change_feeds WHERE table_name = ?", [table]
    ).fetchone()
    return str(row[0]) if row else None


def pending(
    conn: duckdb.DuckDBPyConnection, table: str, column: str, applied_table: str, consumer: str
) -> ChangeScope:
    """The changes to `table` (whose feed records `column`) that `consumer` has not applied,
    per `applied_table`."""
    rows = conn.execute(
        f"SELECT change_id, range_start, range_end FROM _table_changes c WHERE table_name = ? "
        f"AND NOT EXISTS (SELECT 1 FROM {quote(applied_table)} a WHERE a.consumer = ? "
        "AND a.change_id = c.change_id) ORDER BY range_start",
        [table, consumer],
    ).fetchall()
    return ChangeScope(
        column,
        tuple((start, end) for _, start, end in rows),
        tuple(change_id for change_id, _, _ in rows),
    )


def all_change_ids(conn: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    if not table_exists(conn, "_table_changes"):
        return []
    rows = conn.execute("SELECT change_id FROM _table_changes WHERE table_name = ?", [table])
    return [r[0] for r in rows.fetchall()]


def _merged(ranges: tuple[tuple[datetime, datetime], ...]) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _timestamp(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError(f"change feed range {value} has no time zone")
    return f"TIMESTAMPTZ '{value.isoformat()}'"
