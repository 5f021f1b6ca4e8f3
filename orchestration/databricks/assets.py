"""Bronze, silver and gold on Databricks: the same assets (keys, partitions, checks,
automation) as the DuckDB engine, each run as one Databricks job run through Dagster Pipes."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from edge_agent.contract import SCENARIOS
from orchestration.bronze.admission import LandingLimits, column_problem
from orchestration.bronze.assets import (
    QUARANTINE_CHECK,
    BronzeConfig,
    bronze_asset_args,
    partition_targets,
)
from orchestration.bronze.objects import (
    QuarantinedObject,
    admitted,
    read_columns,
    read_sidecar,
    reason,
)
from orchestration.bronze.targets import PartitionTarget
from orchestration.databricks import plan
from orchestration.databricks.workspace import Databricks
from orchestration.gold.assets import (
    FLEET_HEALTH_ARGS,
    READINGS_ALL_REGIONS_ARGS,
    SILENT_CHECK,
    hourly_gold_args,
)
from orchestration.landing.objects import LandingObject, list_hour
from orchestration.resources import LandingZone
from orchestration.settings import environment_settings
from orchestration.silver.assets import (
    SILVER_ASSET_ARGS,
    HourFigures,
    HourViolations,
    check_results,
    run_violations,
)
from orchestration.transforms.expectations import EXPECTATIONS
from orchestration.transforms.gold import GOLD_TABLES, GoldTable

KINDS = {"databricks", "pyspark", "delta"}


def _run_metadata(run: dict[str, Any], settings: Any, layer: str, entity: str) -> dict:
    return {"table": settings.table_name(layer, entity), **run}


# -- bronze -------------------------------------------------------------------------------


def _object_entry(
    client: Any, target: PartitionTarget, obj: LandingObject, limits: LandingLimits
) -> dict[str, Any] | QuarantinedObject:
    """What the job needs to verify and load one object: the sidecar's checksum and rows and
    the footer's columns, or the object quarantined by the admission rules the DuckDB engine
    applies (caps, the key's node, the sidecar, column names). The job checks the bytes."""
    ruled_out = admitted(obj, limits)
    if ruled_out is not None:
        return ruled_out
    sidecar = read_sidecar(client, obj, limits)
    if isinstance(sidecar, QuarantinedObject):
        return sidecar
    columns = read_columns(client, obj, limits)
    if isinstance(columns, QuarantinedObject):
        return columns
    problem = column_problem(columns, (), limits)  # the job checks them against its table
    if problem is not None:
        return QuarantinedObject(obj, problem)
    return {
        "uri": obj.uri,
        "etag": obj.etag,
        "size": obj.size,
        "sha256": sidecar.content_sha256,
        "rows": sidecar.row_count,
        "columns": columns.names,
        "partition_key": target.partition_key,
        "lineage": {
            "_source_object": obj.uri,
            "_node_id": sidecar.node_id,
            "_region": target.region or sidecar.region,
            "_batch_id": sidecar.batch_id,
            "_partition_hour": target.hour.isoformat(),
        },
    }


def build_bronze_asset(scenario: str) -> dg.AssetsDefinition:
    @dg.asset(**bronze_asset_args(scenario, "Delta on Databricks"), kinds={*KINDS, "s3"})
    def bronze(
        context: dg.AssetExecutionContext,
        config: BronzeConfig,
        landing: LandingZone,
        databricks: Databricks,
    ) -> dg.MaterializeResult:
        settings = environment_settings()
        targets = partition_targets(context, scenario, landing)
        assert settings.databricks is not None
        if settings.databricks.bronze_discovery == "autoloader":
            return _autoloader(context, databricks, settings, scenario, targets, config)
        grace = config.incomplete_grace_minutes
        grace = settings.incomplete_grace_minutes if grace is None else grace
        client = landing.client()
        before = datetime.now(UTC) - timedelta(minutes=grace)
        with landing.reachable(), ThreadPoolExecutor(8) as pool:  # Dagster's discovery
            hours = list(pool.map(lambda t: list_hour(client, t.bucket, t.hour, before), targets))
        listed = [(t, o) for t, h in zip(targets, hours, strict=True) for o in h.objects]
        if len(listed) > settings.max_files_per_run:
            raise dg.Failure(
                description=f"{len(listed)} objects in {len(targets)} partition(s) exceed this "
                f"environment's max_files_per_run ({settings.max_files_per_run}); "
                "backfill a smaller range",
                allow_retries=False,
            )
        # Admission, as on DuckDB: a bad object quarantines, a transient read fails the step.
        with landing.reachable(), ThreadPoolExecutor(16) as pool:
            entries = list(
                pool.map(lambda item: _object_entry(client, *item, settings.landing_limits), listed)
            )
        objects = [e for e in entries if not isinstance(e, QuarantinedObject)]
        unread = [
            {"uri": obj.uri, "reason": e.reason, "partition_key": t.partition_key}
            for (t, obj), e in zip(listed, entries, strict=True)
            if isinstance(e, QuarantinedObject)
        ]
        incomplete = [
            {"uri": half.uri, "reason": half.reason(), "partition_key": t.partition_key}
            for t, h in zip(targets, hours, strict=True)
            for half in h.incomplete
        ]
        extras = plan.bronze_extras(
            settings, f"bronze_{scenario}", targets, objects, config.schema_mode
        )
        figures, run = databricks.run_step(context, "bronze", extras)
        quarantined = [*incomplete, *unread] + [  # the job sends kinds; worded as on DuckDB
            {"uri": q["uri"], "partition_key": q["partition_key"],
             "reason": reason(q["kind"], q["detail"])}
            for q in figures.get("quarantined", [])
        ]  # fmt: skip
        rows = figures.get("rows_by_partition", {})
        loaded = figures.get("objects_by_partition", {})
        for target in targets:
            key = target.partition_key
            context.add_asset_metadata(
                {
                    "dagster/row_count": int(rows.get(key, 0)),
                    "objects_loaded": int(loaded.get(key, 0)),
                    "objects_quarantined": sum(q["partition_key"] == key for q in quarantined),
                },
                partition_key=key,
            )
        for q in quarantined:
            context.log.warning(f"quarantined {q['uri']}: {q['reason']}")
        listing = "\n".join(f"| {q['uri']} | {q['reason']} |" for q in quarantined)
        check = dg.AssetCheckResult(
            check_name=QUARANTINE_CHECK,
            passed=not quarantined,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "quarantined": len(quarantined),
                "objects": dg.MetadataValue.md(
                    "| object | reason |\n|---|---|\n" + listing if listing else "none"
                ),
            },
        )
        return dg.MaterializeResult(
            metadata={
                **_run_metadata(run, settings, "bronze", scenario),
                "run_rows": sum(int(v) for v in rows.values()),
                "run_objects": int(figures.get("objects", 0)),
                "run_objects_quarantined": len(quarantined),
                "columns_renamed": ", ".join(
                    f"{a} -> {b}" for a, b in figures.get("renamed_columns", [])
                )
                or "none",
            },
            check_results=[check],
        )

    return bronze


def _autoloader(
    context: dg.AssetExecutionContext,
    databricks: Databricks,
    settings: Any,
    scenario: str,
    targets: list[PartitionTarget],
    config: BronzeConfig,
) -> dg.MaterializeResult:
    """Opt-in: Auto Loader discovers and loads every new object of the scenario's buckets."""
    buckets = sorted({t.bucket for t in targets})
    extras = plan.autoloader_extras(settings, f"bronze_{scenario}", buckets, config.schema_mode)
    figures, run = databricks.run_step(context, "bronze", extras)
    context.log.warning(
        "Auto Loader discovery: rows of any hour may have been loaded (the checkpoint decides), "
        "and objects were not checked against their sidecars"
    )
    return dg.MaterializeResult(
        metadata={
            **_run_metadata(run, settings, "bronze", scenario),
            "discovery": "autoloader",
            "run_rows": int(figures.get("autoloader_rows") or 0),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=QUARANTINE_CHECK,
                passed=True,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"note": "not evaluated: Auto Loader does not read the sidecars"},
            )
        ],
    )


# -- silver -------------------------------------------------------------------------------


@dg.asset(**SILVER_ASSET_ARGS, kinds=KINDS)
def silver_sensor_readings(
    context: dg.AssetExecutionContext, databricks: Databricks
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Sensor readings from every scenario, one row per sensor and event time, validated."""
    settings = environment_settings()
    start, end = context.partition_time_window
    figures, run = databricks.run_step(context, "silver", plan.silver_extras(settings, start, end))
    by_hour = {
        _key(hour): HourViolations(int(rows), {e.name: int(c.get(e.name, 0)) for e in EXPECTATIONS})
        for hour, rows, c in figures.get("violations_by_hour", [])
    }
    counts = run_violations(by_hour).counts
    yield from check_results(context, by_hour, settings.expectations)
    if figures.get("blocked"):
        failed = [e for e in EXPECTATIONS if e.action == "expect_or_fail" and counts[e.name]]
        summary = ", ".join(f"{e.name}: {counts[e.name]} row(s)" for e in failed)
        raise dg.Failure(
            description=f"expect_or_fail violated ({summary}); silver {start}..{end} unchanged"
        )
    per_hour: dict[str, HourFigures] = {}
    for hour, count in figures.get("rows_in_by_hour", []):
        per_hour.setdefault(_key(hour), HourFigures()).rows_in = int(count)
    for hour, count in figures.get("kept_by_hour", []):
        hour_figures = per_hour.setdefault(_key(hour), HourFigures())
        hour_figures.duplicates = hour_figures.rows_in - int(count)
    for hour, scenario, count in figures.get("written_by_hour", []):
        hour_figures = per_hour.setdefault(_key(hour), HourFigures())
        hour_figures.by_scenario[scenario] = int(count)
        hour_figures.written += int(count)
    for partition_key in context.partition_keys:
        context.add_asset_metadata(
            per_hour.get(partition_key, HourFigures()).metadata(), partition_key=partition_key
        )
    yield dg.MaterializeResult(
        metadata={
            **_run_metadata(run, settings, "silver", "sensor_readings"),
            "run_partitions": len(context.partition_keys),
            "run_rows_from_bronze": int(figures.get("rows_in", 0)),
            "run_rows_written": sum(p.written for p in per_hour.values()),
        }
    )


def _key(iso_hour: str) -> str:
    return datetime.fromisoformat(iso_hour).strftime("%Y-%m-%d-%H:%M")


# -- gold ---------------------------------------------------------------------------------


def build_hourly_gold(spec: GoldTable) -> dg.AssetsDefinition:
    @dg.asset(**hourly_gold_args(spec), kinds=KINDS)
    def gold(context: dg.AssetExecutionContext, databricks: Databricks) -> dg.MaterializeResult:
        settings = environment_settings()
        start, end = context.partition_time_window
        extras = plan.hourly_gold_extras(settings, spec, start, end)
        figures, run = databricks.run_step(context, "gold", extras)
        by_hour = {_key(h): int(n) for h, n in figures.get("rows_by_hour", [])}
        for partition_key in context.partition_keys:
            context.add_asset_metadata(
                {"dagster/row_count": by_hour.get(partition_key, 0)}, partition_key=partition_key
            )
        return dg.MaterializeResult(
            metadata={
                **_run_metadata(run, settings, "gold", spec.entity),
                "run_partitions": len(context.partition_keys),
                "run_rows_written": sum(by_hour.values()),
            }
        )

    return gold


@dg.asset(**FLEET_HEALTH_ARGS, kinds=KINDS)
def fleet_health(
    context: dg.AssetExecutionContext, databricks: Databricks
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    settings = environment_settings()
    figures, run = databricks.run_step(context, "gold", plan.fleet_health_extras(settings))
    silent = int(figures.get("silent", 0))
    yield dg.AssetCheckResult(
        check_name=SILENT_CHECK,
        passed=not silent,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"silent_sensors": silent, "silent_after_hours": settings.silent_after_hours},
    )
    yield dg.MaterializeResult(
        metadata={
            **_run_metadata(run, settings, "gold", "fleet_health"),
            "dagster/row_count": int(figures.get("rows", 0)),
        }
    )


@dg.asset(**READINGS_ALL_REGIONS_ARGS, kinds=KINDS)
def readings_all_regions(
    context: dg.AssetExecutionContext, databricks: Databricks
) -> dg.MaterializeResult:
    settings = environment_settings()
    _, run = databricks.run_step(context, "gold", plan.readings_all_regions_extras(settings))
    return dg.MaterializeResult(
        metadata=_run_metadata(run, settings, "gold", "readings_all_regions")
    )


bronze_assets = [build_bronze_asset(scenario) for scenario in SCENARIOS]
gold_assets = [
    *(build_hourly_gold(spec) for spec in GOLD_TABLES),
    fleet_health,
    readings_all_regions,
]
