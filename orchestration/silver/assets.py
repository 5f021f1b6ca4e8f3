"""`silver/sensor_readings`: every scenario's bronze rows unified, deduplicated and checked."""

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import duckdb

from edge_agent.contract import SCENARIOS
from orchestration.automation import on_upstream_change
from orchestration.landing.objects import hour_key
from orchestration.output import table_schema, warehouse_table
from orchestration.partitions import hourly_partitions
from orchestration.settings import ExpectationThresholds
from orchestration.transforms.expectations import EXPECTATIONS, Expectation
from orchestration.transforms.silver import (
    COLUMNS,
    SILVER_TABLE,
    deduplicated_select,
    kept_select,
    scenario_select,
    violations_select,
)
from orchestration.warehouse import Warehouse, create_table_like, quote, table_exists


def _select_from(conn: duckdb.DuckDBPyConnection, scenario: str) -> str | None:
    table = f"bronze_{scenario}"
    if not table_exists(conn, table):
        return None
    present = {row[0] for row in conn.execute(f"DESCRIBE {quote(table)}").fetchall()}
    return scenario_select(scenario, present)


def stage_silver(conn: duckdb.DuckDBPyConnection, start: object, end: object) -> tuple[int, int]:
    """Build `silver_stage` (deduplicated) for [start, end); returns (rows in, duplicates)."""
    selects = [s for s in (_select_from(conn, scenario) for scenario in SCENARIOS) if s]
    if not selects:
        conn.execute(
            "CREATE OR REPLACE TEMP TABLE silver_stage AS SELECT "
            + ", ".join(f"CAST(NULL AS {kind}) AS {quote(n)}" for n, kind, _ in COLUMNS)
            + ", CAST(NULL AS VARCHAR) AS source_scenario LIMIT 0"
        )
        conn.execute("CREATE OR REPLACE TEMP TABLE silver_all AS FROM silver_stage")
        return 0, 0
    union = " UNION ALL ".join(selects)
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE silver_all AS {union}", {"start": start, "end": end}
    )
    rows_in = conn.execute("SELECT count(*) FROM silver_all").fetchone()[0]  # type: ignore[index]
    conn.execute(f"CREATE OR REPLACE TEMP TABLE silver_stage AS {deduplicated_select()}")
    kept = conn.execute("SELECT count(*) FROM silver_stage").fetchone()[0]  # type: ignore[index]
    return int(rows_in), int(rows_in - kept)


@dataclass
class HourFigures:
    """What one silver hour received in a run: shown on that partition's materialization."""

    rows_in: int = 0
    duplicates: int = 0
    written: int = 0
    by_scenario: dict[str, int] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        return {
            "dagster/row_count": self.written,
            "rows_from_bronze": self.rows_in,
            "duplicates_removed": self.duplicates,
            "rows_dropped_by_expectations": self.rows_in - self.duplicates - self.written,
            "rows_by_scenario": dg.MetadataValue.json(self.by_scenario),
        }


def partition_figures(
    conn: duckdb.DuckDBPyConnection, start: object, end: object
) -> dict[str, HourFigures]:
    """Per partition key: rows staged from bronze, duplicates removed, rows written by scenario."""
    figures: dict[str, HourFigures] = defaultdict(HourFigures)
    for hour, rows_in in conn.execute(
        "SELECT _partition_hour, count(*) FROM silver_all GROUP BY ALL"
    ).fetchall():
        figures[hour_key(hour)].rows_in = int(rows_in)
    for hour, kept in conn.execute(
        "SELECT _partition_hour, count(*) FROM silver_stage GROUP BY ALL"
    ).fetchall():
        figures[hour_key(hour)].duplicates = figures[hour_key(hour)].rows_in - int(kept)
    for hour, scenario, rows in conn.execute(
        f"SELECT _partition_hour, source_scenario, count(*) FROM {SILVER_TABLE} "
        "WHERE _partition_hour >= ? AND _partition_hour < ? GROUP BY ALL ORDER BY ALL",
        [start, end],
    ).fetchall():
        hour_figures = figures[hour_key(hour)]
        hour_figures.by_scenario[scenario] = int(rows)
        hour_figures.written += int(rows)
    return dict(figures)


@dataclass(frozen=True)
class HourViolations:
    """One event hour's rows and, per expectation, the rows that do not meet it."""

    rows: int
    counts: dict[str, int]


def violations(conn: duckdb.DuckDBPyConnection) -> dict[str, HourViolations]:
    """Per partition key: the staged rows and each expectation's violations."""
    out = {}
    for hour, rows, *counts in conn.execute(violations_select()).fetchall():
        named = {e.name: int(v) for e, v in zip(EXPECTATIONS, counts, strict=True)}
        out[hour_key(hour)] = HourViolations(int(rows), named)
    return out


def run_violations(by_hour: dict[str, HourViolations]) -> HourViolations:
    """The run's totals over its hours."""
    counts = {e.name: sum(h.counts[e.name] for h in by_hour.values()) for e in EXPECTATIONS}
    return HourViolations(sum(h.rows for h in by_hour.values()), counts)


def _outcome(
    e: Expectation, bad: int, rows: int, thresholds: ExpectationThresholds
) -> tuple[bool, dg.AssetCheckSeverity, dict[str, object]]:
    """Lakeflow's meaning: `expect` keeps the rows and warns only past `expect_warn_rate`;
    `expect_or_drop` drops them and warns only past `drop_fail_rate`; `expect_or_fail` fails
    (and blocks) on any violation."""
    rate = bad / rows if rows else 0.0
    metadata: dict[str, object] = {
        "action": e.action,
        "violations": bad,
        "rows_checked": rows,
        "violation_rate": round(rate, 6),
    }
    if e.action == "expect_or_fail":
        return bad == 0, dg.AssetCheckSeverity.ERROR, metadata
    if e.action == "expect_or_drop":
        metadata |= {"rows_dropped": bad, "fails_above_rate": thresholds.drop_fail_rate}
        return rate <= thresholds.drop_fail_rate, dg.AssetCheckSeverity.WARN, metadata
    metadata["warns_above_rate"] = thresholds.expect_warn_rate
    return rate <= thresholds.expect_warn_rate, dg.AssetCheckSeverity.WARN, metadata


def check_result(
    e: Expectation, bad: int, rows: int, thresholds: ExpectationThresholds
) -> dg.AssetCheckResult:
    """One expectation's check over the run's rows (a one-hour run: that hour's partition)."""
    passed, severity, metadata = _outcome(e, bad, rows, thresholds)
    return dg.AssetCheckResult(
        check_name=e.check_name, passed=passed, severity=severity, metadata=metadata
    )


def check_results(
    context: dg.AssetExecutionContext,
    by_hour: dict[str, HourViolations],
    thresholds: ExpectationThresholds,
) -> Iterator[dg.AssetCheckResult]:
    """Every expectation evaluated per partition. A one-hour run's results are that hour's; a
    run over several hours records an evaluation for each hour, then the run's totals (Dagster
    requires one result per check and run)."""
    hours = context.partition_keys
    if len(hours) > 1:
        for hour in hours:
            figures = by_hour.get(hour, HourViolations(0, {}))
            for e in EXPECTATIONS:
                passed, severity, metadata = _outcome(
                    e, figures.counts.get(e.name, 0), figures.rows, thresholds
                )
                context.log_event(
                    dg.AssetCheckEvaluation(
                        asset_key=context.asset_key, check_name=e.check_name, passed=passed,
                        severity=severity, metadata=metadata, partition=hour,
                        blocking=e.action == "expect_or_fail",
                    )
                )  # fmt: skip
    total = run_violations(by_hour)
    for e in EXPECTATIONS:
        yield check_result(e, total.counts[e.name], total.rows, thresholds)


def silver_column_schema() -> dg.TableSchema:
    """Silver's columns with their types and what they hold (the UI's column view)."""
    return table_schema(
        [(name, kind) for name, kind, _ in COLUMNS] + [("source_scenario", "VARCHAR")]
    )


SILVER_ASSET_ARGS: dict[str, Any] = dict(
    key=["silver", "sensor_readings"],
    owners=["team:data-platform"],
    ins={
        **{
            f"bronze_{s}": dg.AssetIn(key=["bronze", s], dagster_type=dg.Nothing)
            for s in SCENARIOS
            if s != "regional"
        },
        "bronze_regional": dg.AssetIn(
            key=["bronze", "regional"],
            dagster_type=dg.Nothing,
            partition_mapping=dg.MultiToSingleDimensionPartitionMapping(
                partition_dimension_name="hour"
            ),
        ),
    },
    partitions_def=hourly_partitions,
    group_name="silver",
    pool="warehouse",
    automation_condition=on_upstream_change(),
    check_specs=[
        dg.AssetCheckSpec(
            e.check_name,
            asset=dg.AssetKey(["silver", "sensor_readings"]),
            blocking=e.action == "expect_or_fail",
            description=f"{e.action}: {e.description}",
            metadata={"action": e.action},
            partitions_def=hourly_partitions,  # evaluated per hour (see orchestration/__init__)
        )
        for e in EXPECTATIONS
    ],
    metadata={"partition_expr": "_partition_hour", "primary_key": "sensor_id, event_time"},
    backfill_policy=dg.BackfillPolicy.single_run(),
)


@dg.asset(**SILVER_ASSET_ARGS, kinds={"duckdb"})
def silver_sensor_readings(
    context: dg.AssetExecutionContext, warehouse: Warehouse
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Sensor readings from every scenario, one row per sensor and event time, validated."""
    start, end = context.partition_time_window
    window = "_partition_hour >= ? AND _partition_hour < ?"
    thresholds = warehouse.settings().expectations
    with warehouse.connect() as conn:
        rows_in, _ = stage_silver(conn, start, end)
        by_hour = violations(conn)
        counts = run_violations(by_hour).counts
        failed = [e for e in EXPECTATIONS if e.action == "expect_or_fail" and counts[e.name]]
        if failed:
            yield from check_results(context, by_hour, thresholds)
            summary = ", ".join(f"{e.name}: {counts[e.name]} row(s)" for e in failed)
            raise dg.Failure(
                description=f"expect_or_fail violated ({summary}); silver {start}..{end} unchanged"
            )
        conn.execute("BEGIN TRANSACTION")
        if not table_exists(conn, SILVER_TABLE):
            create_table_like(conn, SILVER_TABLE, "SELECT * FROM silver_stage")
        conn.execute(f"DELETE FROM {SILVER_TABLE} WHERE {window}", [start, end])
        conn.execute(f"INSERT INTO {SILVER_TABLE} BY NAME {kept_select()}")
        conn.execute("COMMIT")
        per_hour = partition_figures(conn, start, end)
        shown = warehouse_table(
            conn, SILVER_TABLE, warehouse.display_name("silver", "sensor_readings"),
            warehouse.path(), window, [start, end], "event_time DESC",
        )  # fmt: skip
    written = sum(p.written for p in per_hour.values())
    for partition_key in context.partition_keys:  # each hour carries its own figures
        figures = per_hour.get(partition_key, HourFigures())
        context.add_asset_metadata(figures.metadata(), partition_key=partition_key)
    yield from check_results(context, by_hour, thresholds)
    yield dg.MaterializeResult(
        metadata={
            **shown,
            "dagster/column_schema": silver_column_schema(),
            "run_partitions": len(context.partition_keys),
            "run_rows_from_bronze": rows_in,
            "run_rows_written": written,
        }
    )
