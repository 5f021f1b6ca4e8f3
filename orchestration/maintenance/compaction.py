"""Daily compaction of bronze tables: rewrite fragmented tables in partition order."""

from dataclasses import dataclass

import dagster as dg
import duckdb

from edge_agent.contract import SCENARIOS
from orchestration.warehouse import Warehouse, quote, table_exists

ROW_GROUP_SIZE = 122_880  # DuckDB's row group size


@dataclass
class Compaction:
    table: str
    rows: int
    row_groups_before: int
    row_groups_after: int
    rewritten: bool


def row_groups(conn: duckdb.DuckDBPyConnection, table: str) -> int:
    row = conn.execute(
        "SELECT count(DISTINCT row_group_id) FROM pragma_storage_info(?)", [table]
    ).fetchone()
    return int(row[0]) if row else 0


def compact_table(conn: duckdb.DuckDBPyConnection, table: str, fill: float = 0.5) -> Compaction:
    """Rewrite `table` ordered by partition when its row groups are less than `fill` full.

    Partition replaces (delete + insert per hour) leave many half-empty row groups behind.
    """
    conn.execute("CHECKPOINT")
    rows = int(conn.execute(f"SELECT count(*) FROM {quote(table)}").fetchone()[0])  # type: ignore[index]
    before = row_groups(conn, table)
    needed = max(1, -(-rows // ROW_GROUP_SIZE))
    if before <= needed or rows / max(before, 1) >= fill * ROW_GROUP_SIZE:
        return Compaction(table, rows, before, before, rewritten=False)
    staging = f"{table}__compacting"
    # The copy is made and counted before the swap transaction (see create_table_like for the
    # DuckDB 1.5.5 bug that large writes in one transaction with a new table can hit).
    conn.execute(
        f"CREATE OR REPLACE TABLE {quote(staging)} AS SELECT * FROM {quote(table)} "
        "ORDER BY _partition_hour"
    )
    copied = int(conn.execute(f"SELECT count(*) FROM {quote(staging)}").fetchone()[0])  # type: ignore[index]
    if copied != rows:
        conn.execute(f"DROP TABLE {quote(staging)}")
        raise RuntimeError(f"compaction copy of {table} has {copied} rows, not {rows}")
    conn.execute("BEGIN TRANSACTION")
    conn.execute(f"DROP TABLE {quote(table)}")
    conn.execute(f"ALTER TABLE {quote(staging)} RENAME TO {quote(table)}")
    conn.execute("COMMIT")
    conn.execute("CHECKPOINT")
    return Compaction(table, rows, before, row_groups(conn, table), rewritten=True)


@dg.op(
    pool="warehouse",
    description="Rewrites fragmented bronze tables in partition order and reports what it did.",
)
def compact_bronze_tables(context: dg.OpExecutionContext, warehouse: Warehouse) -> None:
    with warehouse.connect() as conn:
        size_before = warehouse.path().stat().st_size
        results = [
            compact_table(conn, f"bronze_{s}")
            for s in SCENARIOS
            if table_exists(conn, f"bronze_{s}")
        ]
    size_after = warehouse.path().stat().st_size
    for result, scenario in zip(results, [s for s in SCENARIOS], strict=False):
        context.log_event(
            dg.AssetObservation(
                asset_key=dg.AssetKey(["bronze", result.table.removeprefix("bronze_")]),
                metadata={
                    "compaction": "rewritten" if result.rewritten else "not needed",
                    "rows": result.rows,
                    "row_groups_before": result.row_groups_before,
                    "row_groups_after": result.row_groups_after,
                },
            )
        )
        del scenario
    summary = ", ".join(
        f"{r.table}: {r.row_groups_before}->{r.row_groups_after} row groups"
        + (" (rewritten)" if r.rewritten else "")
        for r in results
    )
    context.log.info(
        f"compaction: {summary or 'no bronze tables yet'}; warehouse file "
        f"{size_before / 1e6:.1f} MB -> {size_after / 1e6:.1f} MB"
    )


@dg.job(description="Daily: compacts bronze tables and reports row groups before and after.")
def daily_compaction_job() -> None:
    compact_bronze_tables()


daily_compaction_schedule = dg.ScheduleDefinition(
    job=daily_compaction_job, cron_schedule="30 3 * * *", execution_timezone="UTC"
)
