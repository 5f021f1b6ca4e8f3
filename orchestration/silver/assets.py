"""`silver/sensor_readings`: every scenario's bronze rows unified, deduplicated and checked."""

from collections.abc import Iterator

import dagster as dg

from edge_agent.contract import SCENARIOS
from orchestration.automation import on_upstream_change
from orchestration.engine import LakehouseEngine
from orchestration.environment import Environment
from orchestration.output import table_schema
from orchestration.settings import ExpectationThresholds
from orchestration.silver.figures import HourFigures, HourViolations, run_violations
from orchestration.transforms.expectations import EXPECTATIONS, Expectation
from orchestration.transforms.silver import COLUMNS


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


def silver_asset(env: Environment) -> dg.AssetsDefinition:
    key = dg.AssetKey(["silver", "sensor_readings"])
    regional = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="hour")

    @dg.asset(
        key=key,
        owners=["team:data-platform"],
        ins={
            f"bronze_{s}": dg.AssetIn(
                key=["bronze", s],
                dagster_type=dg.Nothing,
                partition_mapping=regional if s == "regional" else None,
            )
            for s in SCENARIOS
        },
        partitions_def=env.hourly,
        group_name="silver",
        pool="warehouse",
        kinds=env.kinds,
        required_resource_keys=env.resource_keys(),
        automation_condition=on_upstream_change(),
        check_specs=[
            dg.AssetCheckSpec(
                e.check_name,
                asset=key,
                blocking=e.action == "expect_or_fail",
                description=f"{e.action}: {e.description}",
                metadata={"action": e.action},
                partitions_def=env.hourly,  # evaluated per hour (see orchestration/__init__)
            )
            for e in EXPECTATIONS
        ],
        metadata={
            "partition_expr": "_partition_hour",
            "primary_key": "sensor_id, event_time",
            **env.table_metadata("silver", "sensor_readings"),
            "dagster/column_schema": silver_column_schema(),
        },
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def silver_sensor_readings(
        context: dg.AssetExecutionContext,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """Sensor readings from every scenario, one row per sensor and event time, validated."""
        engine: LakehouseEngine = context.resources.engine
        start, end = context.partition_time_window
        thresholds = engine.settings().expectations
        build = engine.build_silver(context, start, end)
        yield from check_results(context, build.violations, thresholds)
        if build.blocked:
            counts = run_violations(build.violations).counts
            failed = [e for e in EXPECTATIONS if e.action == "expect_or_fail" and counts[e.name]]
            summary = ", ".join(f"{e.name}: {counts[e.name]} row(s)" for e in failed)
            raise dg.Failure(
                description=f"expect_or_fail violated ({summary}); silver {start}..{end} unchanged"
            )
        for partition_key in context.partition_keys:  # each hour carries its own figures
            figures = build.hours.get(partition_key, HourFigures())
            context.add_asset_metadata(figures.metadata(), partition_key=partition_key)
        yield dg.MaterializeResult(
            metadata={
                **engine.table_metadata("silver", "sensor_readings"),
                **build.shown,
                "dagster/column_schema": silver_column_schema(),
                "run_partitions": len(context.partition_keys),
                "run_rows_from_bronze": build.rows_in,
                "run_rows_written": sum(h.written for h in build.hours.values()),
            }
        )

    return silver_sensor_readings
