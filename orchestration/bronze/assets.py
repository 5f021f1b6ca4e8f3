"""`bronze/<scenario>`: landing objects verified and loaded by event hour, on either engine."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from pydantic import Field

from edge_agent.contract import SCENARIOS, hour_partition_path, partition_hour
from orchestration.bronze.figures import BronzeLoad, BronzeRequest
from orchestration.bronze.request import TooManyFilesError, bronze_request
from orchestration.bronze.schema import SchemaMode
from orchestration.bronze.targets import PartitionTarget
from orchestration.engine import LakehouseEngine
from orchestration.environment import Environment
from orchestration.output import markdown_table
from orchestration.resources import LandingZone
from orchestration.transforms.columns import DESCRIPTIONS

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


def partition_targets(
    context: dg.AssetExecutionContext, scenario: str, landing: LandingZone
) -> list[PartitionTarget]:
    targets = []
    partitions = context.assets_def.partitions_def
    for key in context.partition_keys:
        if scenario == "regional":
            assert isinstance(partitions, dg.MultiPartitionsDefinition)
            keys = partitions.get_partition_key_from_str(key).keys_by_dimension
            hour, region = partition_hour(keys["hour"]), keys["region"]
            targets.append(PartitionTarget(key, hour, landing.bucket("regional", region), region))
        else:
            targets.append(PartitionTarget(key, partition_hour(key), landing.bucket(scenario)))
    return targets


def _metadata(load: BronzeLoad, name: str, engine: str) -> dict[str, Any]:
    columns = [
        dg.TableColumn(column, kind, description=DESCRIPTIONS.get(column))
        for column, kind in load.columns
    ] + [dg.TableColumn(column, kind, description=why) for column, kind, why in LINEAGE_SCHEMA]
    metadata: dict[str, Any] = {
        "table": name, "dagster/table_name": name, "engine": engine, "run_rows": load.rows,
    }  # fmt: skip
    if not load.checked:  # Auto Loader: objects, bytes and renames are not known here
        return {**metadata, **load.shown}
    metadata |= {
        "run_objects": load.objects,
        "run_bytes": load.bytes,
        "run_objects_quarantined": len(load.quarantined),
        "columns_renamed": ", ".join(f"{a} -> {b}" for a, b in load.renamed_columns.items())
        or "none",
        **load.shown,
    }
    metadata["dagster/column_schema"] = dg.TableSchema(columns=columns)
    if load.objects_bulk_loaded is not None:
        metadata["run_objects_bulk_loaded"] = load.objects_bulk_loaded
    if load.rescued_rows is not None:
        metadata["rows_rescued"] = load.rescued_rows
    if load.added_columns is not None:
        metadata["columns_added"] = ", ".join(load.added_columns) or "none"
    if load.columns:  # what the next run compares its columns with
        metadata["data_columns"] = ", ".join(f"{name} {kind}" for name, kind in load.columns)
    if load.schema_version is not None:
        metadata["schema_version"] = load.schema_version
    if load.schema_history:
        rows = "\n".join(
            f"| {v} | {change} | {mode} | {str(at)[:19]} | {len(json.loads(cols))} |"
            for v, change, mode, at, cols in load.schema_history
        )
        metadata["schema_history"] = dg.MetadataValue.md(
            "| version | change | mode | recorded | columns |\n|---|---|---|---|---|\n" + rows
        )
    return metadata


def _versioned_by_dagster(context: dg.AssetExecutionContext, load: BronzeLoad, engine: str) -> None:
    """An engine that keeps no schema history (Databricks) gets its schema version from the
    asset's own history: the last materialization's version on this engine (another engine's
    table is another table), plus one when the data columns changed since (DuckDB records its
    versions beside the table)."""
    if load.schema_version is not None or not load.checked or not load.columns:
        return
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=context.asset_key), limit=50, ascending=False
    ).records
    metadata: dict[str, Any] = next(
        (
            m.metadata
            for m in (r.asset_materialization for r in records)
            if m is not None and (e := m.metadata.get("engine")) is not None and e.value == engine
        ),
        {},
    )
    version = metadata.get("schema_version")
    before = metadata.get("data_columns")
    now = ", ".join(f"{name} {kind}" for name, kind in load.columns)
    if version is None:
        load.schema_version = 1
    else:
        same = before is not None and before.value == now
        load.schema_version = int(version.value) + (0 if same else 1)  # type: ignore[arg-type]
    if load.added_columns is None and before is not None:
        known = {column.split(" ")[0] for column in str(before.value).split(", ")}
        load.added_columns = [name for name, _ in load.columns if name not in known]


def _quarantine_check(load: BronzeLoad) -> dg.AssetCheckResult:
    if not load.checked:
        return dg.AssetCheckResult(
            check_name=QUARANTINE_CHECK,
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"note": "not evaluated: Auto Loader does not read the sidecars"},
        )
    listing = markdown_table(
        ["object", "reason"], [[q.obj.uri, q.reason] for q in load.quarantined]
    )
    return dg.AssetCheckResult(
        check_name=QUARANTINE_CHECK,
        passed=not load.quarantined,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "quarantined": len(load.quarantined),
            "objects": dg.MetadataValue.md(listing if load.quarantined else "none"),
        },
    )


def build_bronze_asset(scenario: str, env: Environment) -> dg.AssetsDefinition:
    key = dg.AssetKey(["bronze", scenario])
    regional = scenario == "regional"

    @dg.asset(
        key=key,
        owners=["team:data-platform"],
        deps=[dg.AssetKey(["landing", scenario])],
        partitions_def=env.regional if regional else env.hourly,
        group_name="bronze",
        pool="warehouse",
        kinds={*env.kinds, "s3"},
        required_resource_keys=env.resource_keys("landing"),
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
        metadata={"partition_expr": "_partition_hour", **env.table_metadata("bronze", scenario)},
        description=f"Landing {scenario} objects verified and loaded into {env.engine_label}, "
        "by event hour.",
    )
    def bronze(context: dg.AssetExecutionContext, config: BronzeConfig) -> dg.MaterializeResult:
        landing: LandingZone = context.resources.landing
        engine: LakehouseEngine = context.resources.engine
        settings = engine.settings()
        targets = partition_targets(context, scenario, landing)
        grace = config.incomplete_grace_minutes
        grace = settings.incomplete_grace_minutes if grace is None else grace
        common = dict(
            scenario=scenario, client=landing.client(), targets=targets,
            mode=config.schema_mode, run_id=context.run.run_id, limits=settings.landing_limits,
        )  # fmt: skip
        with landing.reachable():
            if engine.discovers_objects():  # Auto Loader: the engine finds the objects
                request = BronzeRequest(
                    table=f"bronze_{scenario}", listed=[], incomplete=[], **common
                )
            else:
                try:
                    request = bronze_request(
                        **common,
                        max_files=settings.max_files_per_run,
                        incomplete_before=datetime.now(UTC) - timedelta(minutes=grace),
                    )
                except TooManyFilesError as exc:
                    raise dg.Failure(description=str(exc), allow_retries=False) from exc
            load = engine.load_bronze(context, request)
        name = engine.table_name("bronze", scenario)
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
            f"{load.rows} rows from {load.objects} object(s) into {name}; "
            f"{len(load.quarantined)} quarantined"
        )
        _versioned_by_dagster(context, load, engine.engine)
        return dg.MaterializeResult(
            metadata=_metadata(load, name, engine.engine), check_results=[_quarantine_check(load)]
        )

    return bronze


def bronze_assets(env: Environment) -> list[dg.AssetsDefinition]:
    return [build_bronze_asset(scenario, env) for scenario in SCENARIOS]
