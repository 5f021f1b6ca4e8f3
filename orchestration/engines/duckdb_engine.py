"""The DuckDB engine: every table in one DuckDB file per environment, synced tables in a
local PostgreSQL (the `warehouse` and `lakebase` resources)."""

from __future__ import annotations

from datetime import datetime

import dagster as dg
import duckdb
import polars as pl

from edge_agent.contract import SCENARIOS
from orchestration.bronze.bookkeeping import schema_history
from orchestration.bronze.figures import BronzeLoad, BronzeRequest
from orchestration.bronze.loader import load_bronze
from orchestration.bronze.schema import NewColumnsRefusedError
from orchestration.changes import record_change
from orchestration.engine import (
    EngineError,
    FleetHealthBuild,
    GoldBuild,
    LakehouseEngine,
    SilverBuild,
    SyncBuild,
    ViewBuild,
)
from orchestration.lakebase.postgres import Lakebase
from orchestration.lakebase.shown import SYNC_ERRORS, sync_metadata
from orchestration.lakebase.sync import sync_table
from orchestration.lakebase.workload import TableToSync
from orchestration.landing.objects import hour_key
from orchestration.output import table_preview, warehouse_table
from orchestration.silver.figures import (
    HourFigures,
    HourViolations,
    hour_figures,
    run_violations,
)
from orchestration.transforms.expectations import EXPECTATIONS
from orchestration.transforms.gold import GoldTable, fleet_health_select
from orchestration.transforms.silver import (
    COLUMNS,
    SILVER_TABLE,
    deduplicated_select,
    kept_select,
    scenario_select,
    violations_select,
)
from orchestration.warehouse import Warehouse, create_table_like, quote, table_exists

WINDOW = "_partition_hour >= ? AND _partition_hour < ?"


class DuckDBEngine(LakehouseEngine):
    """Tables in the environment's DuckDB file (the `warehouse` resource), synced tables in
    the `lakebase` resource's PostgreSQL: the assets require both keys on this engine
    (`Environment.engine_resource_keys`), so run config for either reaches what the engine uses."""

    engine: str = "duckdb"

    # -- bronze -------------------------------------------------------------------------

    def load_bronze(self, context: dg.AssetExecutionContext, request: BronzeRequest) -> BronzeLoad:
        with _warehouse(context).connect() as conn:
            try:
                load = load_bronze(conn, request, staging_root=_warehouse(context).staging_path())
            except NewColumnsRefusedError as exc:
                raise EngineError(str(exc)) from exc
            load.schema_history = schema_history(conn, request.table)
            preview = _preview(conn, request.table, request.targets[0].hour)
        load.shown = {"preview": preview} if preview is not None else {}
        return load

    # -- silver -------------------------------------------------------------------------

    def build_silver(
        self, context: dg.AssetExecutionContext, start: datetime, end: datetime
    ) -> SilverBuild:
        with _warehouse(context).connect() as conn:
            rows_in = _stage_silver(conn, start, end)
            by_hour = _violations(conn)
            counts = run_violations(by_hour).counts
            if any(e.action == "expect_or_fail" and counts[e.name] for e in EXPECTATIONS):
                return SilverBuild(by_hour, blocked=True, rows_in=rows_in)
            conn.execute("BEGIN TRANSACTION")
            if not table_exists(conn, SILVER_TABLE):
                create_table_like(conn, SILVER_TABLE, "SELECT * FROM silver_stage")
            conn.execute(f"DELETE FROM {SILVER_TABLE} WHERE {WINDOW}", [start, end])
            conn.execute(f"INSERT INTO {SILVER_TABLE} BY NAME {kept_select()}")
            conn.execute("COMMIT")
            hours = _hour_figures(conn, start, end)
            shown = self._shown(context, conn, "silver", "sensor_readings", WINDOW, [start, end],
                                "event_time DESC")  # fmt: skip
        return SilverBuild(by_hour, blocked=False, hours=hours, rows_in=rows_in, shown=shown)

    # -- gold ---------------------------------------------------------------------------

    def build_hourly_gold(
        self, context: dg.AssetExecutionContext, spec: GoldTable, start: datetime, end: datetime
    ) -> GoldBuild:
        table = f"gold_{spec.entity}"
        params = {"start": start, "end": end}
        with _warehouse(context).connect() as conn:
            if not table_exists(conn, SILVER_TABLE):
                raise dg.Failure(description=f"{SILVER_TABLE} does not exist yet")
            conn.execute("BEGIN TRANSACTION")
            if not table_exists(conn, table):
                create_table_like(conn, table, spec.select, params)
            conn.execute(f"DELETE FROM {quote(table)} WHERE hour >= ? AND hour < ?", [start, end])
            conn.execute(f"INSERT INTO {quote(table)} BY NAME {spec.select}", params)
            record_change(conn, table, "hour", start, end)  # for Lakebase syncs
            conn.execute("COMMIT")
            by_hour = {
                hour_key(hour): int(rows)
                for hour, rows in conn.execute(
                    f"SELECT hour, count(*) FROM {quote(table)} "
                    "WHERE hour >= ? AND hour < ? GROUP BY ALL",
                    [start, end],
                ).fetchall()
            }
            shown = self._shown(context, conn, "gold", spec.entity, "hour >= ? AND hour < ?",
                                [start, end], "hour DESC")  # fmt: skip
        return GoldBuild(by_hour, shown)

    def build_fleet_health(
        self, context: dg.AssetExecutionContext, silent_after_hours: int
    ) -> FleetHealthBuild:
        with _warehouse(context).connect() as conn:
            conn.execute(
                "CREATE OR REPLACE TABLE gold_fleet_health AS "
                + fleet_health_select(silent_after_hours)
            )
            rows, nodes, silent = conn.execute(
                "SELECT count(*), count(DISTINCT node_id), count(*) FILTER (status = 'silent') "
                "FROM gold_fleet_health"
            ).fetchone()  # type: ignore[misc]
            first_silent = conn.execute(
                "SELECT node_id, sensor_id, last_reading_at FROM gold_fleet_health "
                "WHERE status = 'silent' ORDER BY last_reading_at LIMIT 50"
            ).fetchall()
            shown = self._shown(context, conn, "gold", "fleet_health", order="last_reading_at DESC")
        return FleetHealthBuild(int(rows), int(nodes), int(silent), first_silent, shown)

    def build_view(self, context: dg.AssetExecutionContext, entity: str, select: str) -> ViewBuild:
        view = f"gold_{entity}"
        with _warehouse(context).connect() as conn:
            conn.execute(f"CREATE OR REPLACE VIEW {quote(view)} AS {select}")
            shown = self._shown(context, conn, "gold", entity, order="event_time DESC")
            by_region = dict(
                conn.execute(
                    f"SELECT region, count(*) FROM {quote(view)} GROUP BY ALL ORDER BY ALL"
                ).fetchall()
            )
        return ViewBuild(by_region, shown)

    # -- serving ------------------------------------------------------------------------

    def sync_table(self, context: dg.AssetExecutionContext, spec: TableToSync) -> SyncBuild:
        schema = self.schema_name
        with _warehouse(context).connect() as duck:
            try:
                result = sync_table(duck, _lakebase(context), spec, schema)
            except SYNC_ERRORS as exc:
                raise dg.Failure(description=str(exc)) from exc
        return SyncBuild(
            table=f"{schema}.{result.table}",
            rows=result.target_rows,
            message=f"{schema}.{spec.name}: {result.upserted} upserted, {result.deleted} "
            f"deleted, {result.skipped_null_keys} skipped (null key), {result.seconds:.2f}s",
            shown=sync_metadata(result, _lakebase(context), schema),
        )

    def _shown(
        self,
        context: dg.AssetExecutionContext,
        conn: duckdb.DuckDBPyConnection,
        layer: str,
        entity: str,
        where: str = "true",
        params: list[object] | None = None,
        order: str = "",
    ) -> dict[str, object]:
        return warehouse_table(
            conn, f"{layer}_{entity}", self.table_name(layer, entity), _warehouse(context).path(),
            where, params or [], order,
        )  # fmt: skip


def _warehouse(context: dg.AssetExecutionContext) -> Warehouse:
    return context.resources.warehouse


def _lakebase(context: dg.AssetExecutionContext) -> Lakebase:
    return context.resources.lakebase


def _preview(conn: duckdb.DuckDBPyConnection, table: str, hour: datetime) -> object | None:
    """The first rows the run loaded, as a table in the UI."""
    try:
        rows = conn.execute(
            f'SELECT * EXCLUDE ("_rescued_data") FROM {quote(table)} '
            "WHERE _partition_hour = ? LIMIT 5",
            [hour],
        ).to_arrow_table()
    except duckdb.Error:
        return None
    return table_preview(pl.from_arrow(rows))  # type: ignore[arg-type]


def _select_from(conn: duckdb.DuckDBPyConnection, scenario: str) -> str | None:
    table = f"bronze_{scenario}"
    if not table_exists(conn, table):
        return None
    present = {row[0] for row in conn.execute(f"DESCRIBE {quote(table)}").fetchall()}
    return scenario_select(scenario, present)


def _stage_silver(conn: duckdb.DuckDBPyConnection, start: object, end: object) -> int:
    """Build `silver_all` (every scenario's rows) and `silver_stage` (deduplicated) for
    [start, end); returns the rows read from bronze."""
    selects = [s for s in (_select_from(conn, scenario) for scenario in SCENARIOS) if s]
    if not selects:
        conn.execute(
            "CREATE OR REPLACE TEMP TABLE silver_stage AS SELECT "
            + ", ".join(f"CAST(NULL AS {kind}) AS {quote(n)}" for n, kind, _ in COLUMNS)
            + ", CAST(NULL AS VARCHAR) AS source_scenario LIMIT 0"
        )
        conn.execute("CREATE OR REPLACE TEMP TABLE silver_all AS FROM silver_stage")
        return 0
    union = " UNION ALL ".join(selects)
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE silver_all AS {union}", {"start": start, "end": end}
    )
    conn.execute(f"CREATE OR REPLACE TEMP TABLE silver_stage AS {deduplicated_select()}")
    return int(conn.execute("SELECT count(*) FROM silver_all").fetchone()[0])  # type: ignore[index]


def _violations(conn: duckdb.DuckDBPyConnection) -> dict[str, HourViolations]:
    """Per partition key: the staged rows and each expectation's violations."""
    out = {}
    for hour, rows, *counts in conn.execute(violations_select()).fetchall():
        named = {e.name: int(v) for e, v in zip(EXPECTATIONS, counts, strict=True)}
        out[hour_key(hour)] = HourViolations(int(rows), named)
    return out


def _hour_figures(
    conn: duckdb.DuckDBPyConnection, start: object, end: object
) -> dict[str, HourFigures]:
    """Per partition key: rows staged from bronze, duplicates removed, rows written by scenario."""
    count = "SELECT _partition_hour, count(*) FROM {} GROUP BY ALL"
    written = conn.execute(
        f"SELECT _partition_hour, source_scenario, count(*) FROM {SILVER_TABLE} "
        f"WHERE {WINDOW} GROUP BY ALL ORDER BY ALL",
        [start, end],
    ).fetchall()
    return hour_figures(
        [(hour_key(h), n) for h, n in conn.execute(count.format("silver_all")).fetchall()],
        [(hour_key(h), n) for h, n in conn.execute(count.format("silver_stage")).fetchall()],
        [(hour_key(h), s, n) for h, s, n in written],
    )
