"""`bronze/<scenario>`: landing objects loaded into DuckDB, one event hour per partition."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import duckdb
import polars as pl
from pydantic import Field

from edge_agent.contract import SCENARIOS, hour_partition_path, partition_hour
from orchestration.bronze.bookkeeping import schema_history
from orchestration.bronze.loader import (
    BronzeLoad,
    NewColumnsRefusedError,
    TooManyFilesError,
    load_bronze,
)
from orchestration.bronze.schema import SchemaMode
from orchestration.bronze.targets import PartitionTarget
from orchestration.output import table_preview
from orchestration.partitions import hourly_partitions, regional_partitions
from orchestration.resources import LandingZone
from orchestration.transforms.columns import DESCRIPTIONS
from orchestration.warehouse import Warehouse

QUARANTINE_CHECK = "no_quarantined_objects"
LINEAGE_SCHEMA = (
    ("_source_object", "VARCHAR", "landing object the row came from (s3://...)"),
    ("_node_id", "VARCHAR", "edge node, from the object's sidecar"),
    ("_region", "VARCHAR", "the node's region (regional: the bucket's)"),
    ("_batch_id", "VARCHAR", "the agent's upload batch"),
    ("_partition_hour", "TIMESTAMP WITH TIME ZONE", "event hour: the Dagster partition"),
    ("_ingested_at", "TIMESTAMP WITH TIME ZONE", "when this load committed"),
    ("_rescued_data", "VARCHAR", "schema mode rescue: columns bronze did not know, as JSON"),
)


class BronzeConfig(dg.Config):
    schema_mode: SchemaMode = Field(
        default="addNewColumns",
        description="Auto Loader schema evolution: addNewColumns, rescue, failOnNewColumns, none",
    )
    incomplete_grace_minutes: float | None = Field(
        default=None,
        ge=0,
        description="Halves of uploads older than this are quarantined by name (default: the "
        "environment's incomplete_grace_minutes)",
    )


def partition_targets(context: dg.AssetExecutionContext, scenario: str, landing: LandingZone):
    targets = []
    for key in context.partition_keys:
        if scenario == "regional":
            keys = regional_partitions.get_partition_key_from_str(key).keys_by_dimension
            hour, region = partition_hour(keys["hour"]), keys["region"]
            targets.append(PartitionTarget(key, hour, landing.bucket("regional", region), region))
        else:
            targets.append(PartitionTarget(key, partition_hour(key), landing.bucket(scenario)))
    return targets


def _metadata(
    load: BronzeLoad, name: str, history: list[tuple], preview: dg.TableMetadataValue | None
) -> dict:
    columns = [
        dg.TableColumn(f.name, str(f.type), description=DESCRIPTIONS.get(f.name))
        for f in (load.schema or [])
    ] + [dg.TableColumn(name, kind, description=why) for name, kind, why in LINEAGE_SCHEMA]
    rows = "\n".join(
        f"| {v} | {change} | {mode} | {str(at)[:19]} | {len(json.loads(cols))} |"
        for v, change, mode, at, cols in history
    )
    return {
        "table": name,
        "dagster/table_name": name,
        "run_rows": load.rows,
        "run_objects": load.objects,
        "run_objects_bulk_loaded": load.objects_bulk_loaded,
        "run_objects_quarantined": len(load.quarantined),
        "rows_rescued": load.rescued_rows,
        "schema_version": load.schema_version,
        "columns_added": ", ".join(load.added_columns) or "none",
        "columns_renamed": ", ".join(f"{a} -> {b}" for a, b in load.renamed_columns.items())
        or "none",
        "dagster/column_schema": dg.TableSchema(columns=columns),
        "schema_history": dg.MetadataValue.md(
            "| version | change | mode | recorded | columns |\n|---|---|---|---|---|\n" + rows
        ),
        **({"preview": preview} if preview is not None else {}),
    }


def _preview(conn, table: str, targets: list[PartitionTarget]) -> dg.TableMetadataValue | None:
    """The first rows the run loaded, as a table in the UI."""
    if not targets:
        return None
    try:
        rows = conn.execute(
            f'SELECT * EXCLUDE ("_rescued_data") FROM "{table}" WHERE _partition_hour = ? LIMIT 5',
            [targets[0].hour],
        ).to_arrow_table()
    except duckdb.Error:
        return None
    return table_preview(pl.from_arrow(rows))  # type: ignore[arg-type]


def bronze_asset_args(scenario: str, engine: str = "DuckDB") -> dict[str, Any]:
    """What a bronze asset is, on either engine (all but its compute and kinds)."""
    key = dg.AssetKey(["bronze", scenario])
    regional = scenario == "regional"
    return dict(
        key=key,
        owners=["team:data-platform"],
        deps=[dg.AssetKey(["landing", scenario])],
        partitions_def=regional_partitions if regional else hourly_partitions,
        group_name="bronze",
        pool="warehouse",
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=dg.RetryPolicy(max_retries=2, delay=5),
        check_specs=[
            dg.AssetCheckSpec(
                QUARANTINE_CHECK,
                asset=key,
                description="Fails, naming them, when objects of the loaded hours were "
                "quarantined (bad checksum, row count, Parquet, or unreconcilable schema).",
            )
        ],
        metadata={"partition_expr": "_partition_hour"},
        description=f"Landing {scenario} objects verified and loaded into {engine}, by event hour.",
    )


def build_bronze_asset(scenario: str) -> dg.AssetsDefinition:
    @dg.asset(**bronze_asset_args(scenario), kinds={"duckdb", "s3"})
    def bronze(
        context: dg.AssetExecutionContext,
        config: BronzeConfig,
        landing: LandingZone,
        warehouse: Warehouse,
    ) -> dg.MaterializeResult:
        table = f"bronze_{scenario}"
        targets = partition_targets(context, scenario, landing)
        settings = warehouse.settings()
        grace = config.incomplete_grace_minutes
        grace = settings.incomplete_grace_minutes if grace is None else grace
        with warehouse.connect() as conn, landing.reachable():
            try:
                load = load_bronze(
                    conn,
                    client=landing.client(),
                    table=table,
                    targets=targets,
                    mode=config.schema_mode,
                    run_id=context.run.run_id,
                    max_files=settings.max_files_per_run,
                    incomplete_before=datetime.now(UTC) - timedelta(minutes=grace),
                    staging_root=warehouse.staging_path(),
                    limits=settings.landing_limits,
                )
            except (NewColumnsRefusedError, TooManyFilesError) as exc:
                raise dg.Failure(description=str(exc), allow_retries=False) from exc
            history = schema_history(conn, table)
            preview = _preview(conn, table, targets)
        by_key = {t.partition_key: t for t in targets}
        for partition_key, partition in load.partitions.items():
            target = by_key[partition_key]
            objects = landing.browse_url(
                target.bucket, hour_partition_path(target.hour) + "/", target.region
            )
            context.add_asset_metadata(
                {
                    "landing_objects": dg.MetadataValue.url(objects),
                    "dagster/row_count": partition.rows,
                    "objects_loaded": partition.objects,
                    "bytes_loaded": partition.bytes,
                    "objects_quarantined": partition.quarantined,
                },
                partition_key=partition_key,
            )
        for q in load.quarantined:
            context.log.warning(f"quarantined {q.obj.uri}: {q.reason}")
        for old, new in load.renamed_columns.items():
            context.log.warning(f"data column {old} collides with a bronze column: stored as {new}")
        context.log.info(
            f"{load.rows} rows from {load.objects} object(s) into "
            f"{warehouse.display_name('bronze', scenario)}; {len(load.quarantined)} quarantined"
        )
        quarantine = "\n".join(f"| {q.obj.uri} | {q.reason} |" for q in load.quarantined)
        check = dg.AssetCheckResult(
            check_name=QUARANTINE_CHECK,
            passed=not load.quarantined,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "quarantined": len(load.quarantined),
                "objects": dg.MetadataValue.md(
                    "| object | reason |\n|---|---|\n" + quarantine if quarantine else "none"
                ),
            },
        )
        return dg.MaterializeResult(
            metadata=_metadata(load, warehouse.display_name("bronze", scenario), history, preview),
            check_results=[check],
        )

    return bronze


bronze_assets = [build_bronze_asset(scenario) for scenario in SCENARIOS]
