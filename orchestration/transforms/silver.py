"""Silver's SQL: each bronze table mapped to silver's columns, unified, deduplicated, checked."""

from __future__ import annotations

from collections.abc import Collection

from orchestration.transforms.expectations import EXPECTATIONS

SILVER_TABLE = "silver_sensor_readings"
WINDOW = "_partition_hour >= $start AND _partition_hour < $end"
# When the same reading arrives through several scenarios, keep the richest copy.
SCENARIO_PRIORITY = {"schematized": 1, "raw": 2, "regional": 3, "emergency": 4, "filtered": 5}
COLUMNS: tuple[tuple[str, str, str], ...] = (
    # (silver column, SQL type, bronze column it comes from)
    ("node_id", "VARCHAR", "_node_id"),
    ("region", "VARCHAR", "_region"),
    ("sensor_id", "VARCHAR", "sensor_id"),
    ("event_time", "TIMESTAMPTZ", "timestamp"),
    ("temperature", "DOUBLE", "temperature"),
    ("humidity", "DOUBLE", "humidity"),
    ("pressure", "DOUBLE", "pressure"),
    ("vibration", "DOUBLE", "vibration"),
    ("voltage", "DOUBLE", "voltage"),
    ("status_code", "BIGINT", "status_code"),
    ("anomaly_flag", "BIGINT", "anomaly_flag"),
    ("anomaly_type", "VARCHAR", "anomaly_type"),
    ("emergency_reason", "VARCHAR", "emergency_reason"),
    ("firmware_version", "VARCHAR", "firmware_version"),
    ("model", "VARCHAR", "model"),
    ("manufacturer", "VARCHAR", "manufacturer"),
    ("location", "VARCHAR", "location"),
    ("latitude", "DOUBLE", "latitude"),
    ("longitude", "DOUBLE", "longitude"),
    ("sensor_type", "VARCHAR", "sensor_type"),
    ("source_object", "VARCHAR", "_source_object"),
    ("source_id", "BIGINT", "id"),
    ("_partition_hour", "TIMESTAMPTZ", "_partition_hour"),
)
SILVER_COLUMNS = (*(name for name, _, _ in COLUMNS), "source_scenario")
DESCRIPTIONS = {
    "node_id": "edge node that uploaded the reading (bronze _node_id)",
    "region": "the node's region (bronze _region)",
    "sensor_id": "sensor, e.g. AMS_000123; with event_time, the primary key",
    "event_time": "when the sensor took the reading, UTC",
    "emergency_reason": "threshold the emergency scenario flagged (emergency nodes only)",
    "source_object": "landing object the row came from (s3://...)",
    "source_id": "row id in the node's SQLite table",
    "_partition_hour": "event hour: the Dagster partition",
    "source_scenario": "scenario whose copy won deduplication",
}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def scenario_select(scenario: str, present: Collection[str] | None = None) -> str:
    """One bronze table's rows of the window as silver columns (with `_priority`).

    `present` names the bronze columns that exist; others become typed NULLs. None means all
    exist (the Databricks job adds the missing ones as NULL columns before it runs this).
    """
    exprs = [
        f"TRY_CAST({_quote(src)} AS {kind}) AS {_quote(name)}"
        if present is None or src in present
        else f"CAST(NULL AS {kind}) AS {_quote(name)}"
        for name, kind, src in COLUMNS
    ]
    return (
        f"SELECT {', '.join(exprs)}, '{scenario}' AS source_scenario, "
        f"{SCENARIO_PRIORITY[scenario]} AS _priority FROM {_quote(f'bronze_{scenario}')} "
        f"WHERE {WINDOW}"
    )


def kept_by_expectations() -> str:
    """SQL that is true for a row every expect_or_drop expectation keeps."""
    drops = [e.condition for e in EXPECTATIONS if e.action == "expect_or_drop"]
    return " AND ".join(f"coalesce({c}, false)" for c in drops) or "true"


def deduplicated_select(source: str = "silver_all") -> str:
    """One row per (sensor_id, event_time) of `source`.

    A valid copy always wins over an invalid one (a corrected resend must not be dropped by
    expect_or_drop after dedup kept the bad copy); then the richest scenario, then the source.
    Written without QUALIFY and `* EXCLUDE` so that it means the same on Spark.
    """
    columns = ", ".join(_quote(c) for c in SILVER_COLUMNS)
    return (
        f"SELECT {columns} FROM (SELECT *, row_number() OVER (PARTITION BY sensor_id, event_time "
        f"ORDER BY ({kept_by_expectations()}) DESC, _priority, source_object, source_id) AS _rank "
        f"FROM {source}) AS ranked WHERE _rank = 1"
    )


def violations_select(source: str = "silver_stage") -> str:
    """One row per event hour: the hour, its rows (`_rows`) and, per expectation, the rows of
    `source` that do not meet it (checks are evaluated per partition)."""
    counts = ", ".join(
        f"coalesce(count_if(NOT coalesce({e.condition}, false)), 0) AS {_quote(e.name)}"
        for e in EXPECTATIONS
    )
    return (
        f"SELECT _partition_hour AS _hour, count(*) AS _rows, {counts} FROM {source} "
        "GROUP BY _partition_hour ORDER BY _partition_hour"
    )


def kept_select(source: str = "silver_stage") -> str:
    """The staged rows silver keeps: those every expect_or_drop expectation keeps."""
    return f"SELECT * FROM {source} WHERE {kept_by_expectations()}"
