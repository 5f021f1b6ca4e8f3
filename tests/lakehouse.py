"""Helpers for lakehouse tests: landing objects as the agent writes them, resources, runs."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from edge_agent.batches import encode_parquet
from edge_agent.contract import (
    SIDECAR_FORMAT,
    SIDECAR_FORMAT_VERSION,
    data_object_key,
    sidecar_key,
)
from orchestration.engine import engine_fields
from orchestration.engines.duckdb_engine import DuckDBEngine
from orchestration.environment import Environment, build_environment
from orchestration.lakebase.postgres import Lakebase
from orchestration.landing.objects import hour_key as hour_key  # the tests' partition keys
from orchestration.resources import LandingZone
from orchestration.settings import environment_settings
from orchestration.warehouse import Warehouse

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
# Tests' partitions start a month back, whatever day they run (an installation's start is in
# DAGSTER_HOME; tests build their assets without one).
FIRST_HOUR = (NOW - timedelta(days=30)).strftime("%Y-%m-%d-00:00")


def environment(name: str = "dev") -> Environment:
    """One environment's graph inputs, as `build_definitions` resolves them."""
    return build_environment(environment_settings(name), partitions_start=FIRST_HOUR)


DEV = environment("dev")


def engine_resources(warehouse: Warehouse, lakebase: Lakebase | None = None) -> dict[str, Any]:
    """The DuckDB engine and what it works through: what bronze (with `landing`), silver, gold
    and synced tables need."""
    engine = DuckDBEngine(**engine_fields(warehouse.settings()))
    return {"warehouse": warehouse, "lakebase": lakebase or Lakebase(), "engine": engine}


def reading(i: int, hour: datetime, **overrides: Any) -> dict[str, Any]:
    row = {
        "id": i,
        "timestamp": (hour + timedelta(seconds=i % 3600)).isoformat(),
        "sensor_id": f"AMS_{i % 7:06d}",
        "temperature": 61.0 + (i % 5) / 10,
        "humidity": 3.0,
        "pressure": 12.0,
        "vibration": 1.5,
        "voltage": 12.0,
        "status_code": 0,
        "anomaly_flag": 0,
        "anomaly_type": None,
        "latitude": 52.37,
        "longitude": 4.9,
    }
    row.update(overrides)
    return row


def put_object(
    s3: Any,
    bucket: str,
    hour: datetime,
    rows: list[dict[str, Any]] | pa.Table,
    *,
    node: str = "n1",
    batch: str = "b0000001-000000000001-000000000010",
    region: str = "us-east-1",
    body_override: bytes | None = None,
    sidecar_overrides: dict[str, Any] | None = None,
) -> str:
    """A Parquet object and its sidecar, as `edge-agent upload` writes them; returns the URI."""
    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows)
    body = encode_parquet(table, "timestamp")
    stored = body_override if body_override is not None else body
    key = data_object_key(hour, node, batch)
    sidecar = {
        "format": SIDECAR_FORMAT,
        "format_version": SIDECAR_FORMAT_VERSION,
        "node_id": node,
        "region": region,
        "batch_id": batch,
        "row_count": table.num_rows,
        "content_sha256": hashlib.sha256(stored).hexdigest(),
        "content_md5": hashlib.md5(stored, usedforsecurity=False).hexdigest(),
        "object_key": key,
        "metadata_key": sidecar_key(key),
        "schema": [{"name": f.name, "type": str(f.type)} for f in _written_schema(body)],
        **(sidecar_overrides or {}),
    }
    s3.put_object(Bucket=bucket, Key=key, Body=stored)
    s3.put_object(Bucket=bucket, Key=sidecar_key(key), Body=json.dumps(sidecar).encode())
    return f"s3://{bucket}/{key}"


def quarantine_reasons(table: str) -> dict[str, str]:
    """The quarantine check's markdown table (| object | reason |) as reason by object URI."""
    rows = [line.strip("| ").split(" | ", 1) for line in table.splitlines()[2:]]
    return {uri: why for uri, why in rows}


def _written_schema(body: bytes) -> pa.Schema:
    """The columns the Parquet object holds, as the agent states them in the sidecar."""
    return pq.read_schema(io.BytesIO(body))


def resources(prefix: str, endpoint: str, warehouse_path: Path) -> dict[str, Any]:
    warehouse = Warehouse(database_path=str(warehouse_path))
    return {
        "landing": LandingZone(bucket_prefix=prefix, endpoint_url=endpoint),
        **engine_resources(warehouse),
    }


def materialize(
    asset: Any,
    partition_key: str | None,
    res: dict[str, Any],
    instance: dg.DagsterInstance,
    run_config: dict[str, Any] | None = None,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [asset],
        partition_key=partition_key,
        resources=res,
        instance=instance,
        run_config=run_config or {},
        raise_on_error=raise_on_error,
    )


def warehouse_rows(path: Path, sql: str, schema: str = "dev") -> list[tuple[Any, ...]]:
    """Query a test warehouse file read-only, with its catalog and schema current."""
    with duckdb.connect() as conn:
        conn.execute(f"ATTACH '{path}' AS lakehouse (READ_ONLY)")
        conn.execute(f"USE lakehouse.{schema}")
        return conn.execute(sql).fetchall()


def databricks_resources(databricks: Any, landing: LandingZone) -> dict[str, Any]:
    """The Databricks engine over the workspace resource `databricks` (its environment's)."""
    from orchestration.databricks.engine import DatabricksEngine

    settings = environment_settings(databricks.environment)
    engine = DatabricksEngine(**engine_fields(settings))
    return {"landing": landing, "databricks": databricks, "engine": engine}
