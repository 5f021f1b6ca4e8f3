"""What each Databricks job step receives: Databricks SQL generated from the transforms, the
exact object list for bronze, and how each Delta table is written.

Pure functions of the environment and the partitions: the assets send these as Pipes extras,
and `lakehouse-databricks-plan` prints them for a partition range without a workspace.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from orchestration.bronze.objects import S3_ERRORS
from orchestration.bronze.schema import ColumnVote
from orchestration.bronze.targets import PartitionTarget
from orchestration.settings import EnvironmentSettings
from orchestration.transforms.dialect import to_databricks
from orchestration.transforms.expectations import EXPECTATIONS
from orchestration.transforms.gold import (
    GOLD_TABLES,
    READINGS_ALL_REGIONS_SELECT,
    GoldTable,
    fleet_health_select,
)
from orchestration.transforms.silver import (
    COLUMNS,
    SCENARIO_PRIORITY,
    SILVER_TABLE,
    deduplicated_select,
    kept_select,
    scenario_select,
    violations_select,
)

# Synced tables (TRIGGERED and CONTINUOUS) read the gold tables' change feed.
CHANGE_DATA_FEED = {"delta.enableChangeDataFeed": "true"}


def timestamp_literal(moment: datetime) -> str:
    return f"TIMESTAMP '{moment.strftime('%Y-%m-%d %H:%M:%S')}'"


def string_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def window_predicate(column: str, start: datetime, end: datetime) -> str:
    return f"{column} >= {timestamp_literal(start)} AND {column} < {timestamp_literal(end)}"


def bronze_predicate(targets: list[PartitionTarget]) -> str:
    """The rows a bronze run replaces: exactly its hours (and regions, for regional)."""
    if all(t.region is None for t in targets):
        hours = ", ".join(timestamp_literal(t.hour) for t in targets)
        return f"_partition_hour IN ({hours})"
    return " OR ".join(
        f"(_partition_hour = {timestamp_literal(t.hour)} AND _region = {string_literal(t.region)})"
        for t in targets
        if t.region is not None
    )


def write_spec(predicate: str | None, properties: dict[str, str] | None = None) -> dict[str, Any]:
    """A Delta write: replaceWhere on `predicate` (a full overwrite without one)."""
    options = {"mergeSchema": "true"}
    if predicate:
        options["replaceWhere"] = predicate
    return {"mode": "overwrite", "options": options, "table_properties": properties or {}}


def _common(settings: EnvironmentSettings, step: str) -> dict[str, Any]:
    return {"step": step, "catalog": settings.catalog, "schema": settings.schema}


def bronze_extras(
    settings: EnvironmentSettings,
    table: str,
    targets: list[PartitionTarget],
    objects: list[dict[str, Any]],
    schema_mode: str,
    column_types: dict[str, ColumnVote],
) -> dict[str, Any]:
    return {
        **_common(settings, "bronze"),
        "table": table,
        "objects": objects,
        "partition_keys": [t.partition_key for t in targets],
        "schema_mode": schema_mode,
        # Columns the objects type differently: the type Dagster decided for each
        # (bronze.schema.agreed_types), in Spark SQL, whichever objects the job gets to read.
        "column_types": {
            name: ddl for name, vote in column_types.items() if (ddl := spark_type(vote.type))
        },
        "write": write_spec(bronze_predicate(targets)),
        # The job copies each object here while hashing it, and loads the copy it verified.
        "staging": f"{settings.databricks.volume}/staging" if settings.databricks else None,
        "max_object_bytes": settings.landing_limits.max_object_bytes,
        "s3_errors": S3_ERRORS,  # which S3 answers are about the object, which may pass
    }


_SPARK_TYPES = {
    "int8": "tinyint",
    "int16": "smallint",
    "int32": "int",
    "int64": "bigint",
    "uint8": "smallint",
    "uint16": "int",
    "uint32": "bigint",
    "uint64": "decimal(20,0)",
    "float": "float",
    "double": "double",
    "bool": "boolean",
    "string": "string",
    "large_string": "string",
    "binary": "binary",
    "large_binary": "binary",
    "date32[day]": "date",
}  # fmt: skip  (Spark reads Parquet's unsigned integers into the next wider signed type)
_TIMESTAMP = re.compile(r"timestamp\[(?:s|ms|us|ns)(, tz=.+)?\]")
_DECIMAL = re.compile(r"decimal128\((\d+), (\d+)\)")


def spark_type(arrow: str) -> str | None:
    """The Spark SQL type Spark reads a Parquet column of this Arrow type as (the name as
    `agreed_types` gives it), or None for a type with no plain equivalent (the job then keeps
    the type of the first object that has the column, as the DuckDB engine does)."""
    if timestamp := _TIMESTAMP.fullmatch(arrow):
        return "timestamp" if timestamp[1] else "timestamp_ntz"
    if decimal := _DECIMAL.fullmatch(arrow):
        return f"decimal({decimal[1]},{decimal[2]})"
    return _SPARK_TYPES.get(arrow)


def autoloader_extras(
    settings: EnvironmentSettings, table: str, buckets: list[str], schema_mode: str
) -> dict[str, Any]:
    """Auto Loader instead of Dagster's discovery: every new object of the buckets, once, by
    Auto Loader's checkpoint (availableNow), with Auto Loader's own schema modes."""
    assert settings.databricks is not None
    state = f"{settings.databricks.volume}/autoloader/{table}"
    return {
        **_common(settings, "bronze_autoloader"),
        "table": table,
        "sources": [f"s3://{bucket}/" for bucket in buckets],
        "options": {
            "cloudFiles.format": "parquet",
            "cloudFiles.schemaLocation": f"{state}/schema",
            "cloudFiles.schemaEvolutionMode": schema_mode,
            "cloudFiles.includeExistingFiles": "true",
            "rescuedDataColumn": "_rescued_data",
            "pathGlobFilter": "*.parquet",
            "recursiveFileLookup": "true",
        },
        "checkpoint": f"{state}/checkpoint",
        "trigger": {"availableNow": True},
        "table_properties": {},
    }


def silver_extras(settings: EnvironmentSettings, start: datetime, end: datetime) -> dict[str, Any]:
    return {
        **_common(settings, "silver"),
        "table": SILVER_TABLE,
        "window": [start.isoformat(), end.isoformat()],
        "selects": {s: to_databricks(scenario_select(s)) for s in SCENARIO_PRIORITY},
        "source_columns": sorted({src for _, _, src in COLUMNS}),
        "dedup": to_databricks(deduplicated_select()),
        "violations": to_databricks(violations_select()),
        "kept": to_databricks(kept_select()),
        "expect_or_fail": [e.name for e in EXPECTATIONS if e.action == "expect_or_fail"],
        "write": write_spec(window_predicate("_partition_hour", start, end)),
    }


def hourly_gold_extras(
    settings: EnvironmentSettings, spec: GoldTable, start: datetime, end: datetime
) -> dict[str, Any]:
    return {
        **_common(settings, "gold"),
        "table": f"gold_{spec.entity}",
        "source": SILVER_TABLE,
        "select": to_databricks(spec.select),
        "window": [start.isoformat(), end.isoformat()],
        "partition_column": "hour",
        "write": write_spec(window_predicate("hour", start, end), CHANGE_DATA_FEED),
    }


def fleet_health_extras(settings: EnvironmentSettings) -> dict[str, Any]:
    return {
        **_common(settings, "gold"),
        "table": "gold_fleet_health",
        "source": SILVER_TABLE,
        "select": to_databricks(fleet_health_select(settings.silent_after_hours)),
        "write": write_spec(None, CHANGE_DATA_FEED),
    }


def view_extras(settings: EnvironmentSettings, table: str, select: str) -> dict[str, Any]:
    return {
        **_common(settings, "gold"),
        "table": table,
        "source": SILVER_TABLE,
        "select": to_databricks(select),
        "view": True,
    }


def all_statements(settings: EnvironmentSettings, start: datetime, end: datetime) -> str:
    """Every generated statement and write spec for one window, as the snapshot pins them."""
    parts = {
        "bronze/raw (autoloader)": autoloader_extras(
            settings, "bronze_raw", ["edge-databricks-raw-us-east-1"], "addNewColumns"
        ),
        "silver": silver_extras(settings, start, end),
        **{f"gold/{g.entity}": hourly_gold_extras(settings, g, start, end) for g in GOLD_TABLES},
        "gold/fleet_health": fleet_health_extras(settings),
        "gold/readings_all_regions": view_extras(
            settings, "gold_readings_all_regions", READINGS_ALL_REGIONS_SELECT
        ),
    }
    return json.dumps(parts, indent=1, sort_keys=True) + "\n"
