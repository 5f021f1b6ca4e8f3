"""One claimed id range into objects: Parquet per event hour, JSON sidecars, rejects."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from edge_agent import __version__
from edge_agent.contract import (
    SidecarDocument,
    dagster_partition_key,
    data_object_key,
    landing_asset_key,
    rejected_object_key,
    schema_fingerprint,
    sidecar_key,
)
from edge_agent.control import Claim
from edge_agent.reporting import report_body
from edge_agent.scenarios import ScenarioSettings, shape, split_by_hour
from edge_agent.source import ClaimRows, SourceTable, parse_event_times
from edge_agent.storage import ObjectStore, StoredObject

CRASHPOINT_ENV = "EDGE_AGENT_CRASHPOINT"


def crashpoint(name: str) -> None:
    """Test hook: `EDGE_AGENT_CRASHPOINT=name` SIGKILLs the agent here, like a power cut."""
    if os.environ.get(CRASHPOINT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


# Columns whose min/max statistics readers use to skip row groups; others cost time for nothing.
STATISTICS_COLUMNS = ("id", "sensor_id", "anomaly_flag", "emergency_reason")


def encode_parquet(table: pa.Table, timestamp_column: str, key_column: str = "id") -> bytes:
    # Dictionary-encode the repetitive text columns only: per-row unique values (timestamps)
    # make dictionaries cost time and bytes.
    dictionary = [
        f.name for f in table.schema if pa.types.is_string(f.type) and f.name != timestamp_column
    ]
    statistics = [
        c for c in (*STATISTICS_COLUMNS, key_column, timestamp_column) if c in table.column_names
    ]
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        use_dictionary=dictionary,
        write_statistics=list(dict.fromkeys(statistics)),
    )
    return sink.getvalue().to_pybytes()


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


@dataclass
class BatchContext:
    """What every object of a claim shares."""

    source: SourceTable
    node_id: str
    region: str
    settings: ScenarioSettings
    store: ObjectStore


@dataclass
class BatchResult:
    claim: Claim
    rows_read: int = 0
    rows_uploaded: int = 0
    rows_rejected: int = 0
    rows_removed: int = 0
    bytes_written: int = 0
    objects: list[StoredObject] = field(default_factory=list)
    reports: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    hours: list[str] = field(default_factory=list)


def _rejects_as_text(rejected: list[pa.Table]) -> pa.Table | None:
    """All rows kept apart in one text table: nothing typed can be lost in the conversion."""
    tables = []
    for table in rejected:
        if table.num_rows:
            columns = [
                pc.cast(table.column(n), pa.string()) if table.schema.field(n).type != pa.string()
                else table.column(n)
                for n in table.column_names
            ]  # fmt: skip
            tables.append(pa.Table.from_arrays(columns, names=table.column_names))
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="permissive")


def build_and_upload(claim: Claim, rows: ClaimRows, ctx: BatchContext) -> BatchResult:
    """Shape one claim's rows and put every object; nothing is committed here."""
    result = BatchResult(claim, rows_read=rows.rows.num_rows + rows.untyped.num_rows)
    table = rows.rows
    ts = ctx.source.timestamp_column
    event_time = parse_event_times(table.column(ts))
    unparsable = pc.is_null(event_time)
    rejected_parts = [rows.untyped]
    if pc.any(unparsable).as_py():
        bad = table.filter(unparsable)
        reason = pa.array([f"unparsable timestamp in column {ts}"] * bad.num_rows, pa.string())
        rejected_parts.append(bad.append_column("_reject_reason", reason))
        keep = pc.invert(unparsable)
        table, event_time = table.filter(keep), event_time.filter(keep)
    shaped = shape(claim.pipeline_type, table, event_time, ts, ctx.settings)
    rejected_parts.append(shaped.rejected)
    result.rows_removed = shaped.removed

    common: dict[str, Any] = dict(
        agent_version=__version__,
        node_id=ctx.node_id,
        region=ctx.region,
        scenario=claim.pipeline_type,
        source_table=ctx.source.name,
        batch_id=claim.batch_id,
        watermark={
            "key_column": ctx.source.key_column,
            "start_exclusive": claim.start_key,
            "end_inclusive": claim.end_key,
        },
        rules=list(shaped.rules),
    )
    asset_key = landing_asset_key(claim.pipeline_type)
    for hour, part, times in split_by_hour(shaped.rows, shaped.event_time):
        body = encode_parquet(part, ts, ctx.source.key_column)
        key = data_object_key(hour, ctx.node_id, claim.batch_id)
        bounds = pc.min_max(times)
        sidecar = SidecarDocument(
            **common,
            object_key=key,
            metadata_key=sidecar_key(key),
            partition={"hour": dagster_partition_key(hour)},
            row_count=part.num_rows,
            first_timestamp=_iso(bounds["min"].as_py()),
            last_timestamp=_iso(bounds["max"].as_py()),
            schema_fingerprint=schema_fingerprint(part.schema),
            schema=[{"name": f.name, "type": str(f.type)} for f in part.schema],
            content_sha256=hashlib.sha256(body).hexdigest(),
            # A single-part upload's ETag is this MD5, so readers can verify the object from a
            # listing without downloading it.
            content_md5=hashlib.md5(body, usedforsecurity=False).hexdigest(),
            content_bytes=len(body),
        ).to_json()
        crashpoint("before_upload")
        stored = ctx.store.put(claim.bucket, key, body, "application/vnd.apache.parquet")
        crashpoint("between_data_and_metadata")
        ctx.store.put(claim.bucket, sidecar["metadata_key"], _json(sidecar), "application/json")
        result.objects.append(stored)
        result.bytes_written += stored.size
        result.rows_uploaded += part.num_rows
        result.hours.append(dagster_partition_key(hour))
        description = (
            f"{part.num_rows} {claim.pipeline_type} rows from node {ctx.node_id} "
            f"(ids {claim.start_key + 1}..{claim.end_key})"
        )
        result.reports.append(
            (asset_key, report_body(stored, sidecar, dagster_partition_key(hour), description))
        )

    rejects = _rejects_as_text(rejected_parts)
    if rejects is not None:
        key = rejected_object_key(ctx.node_id, claim.batch_id)
        body = encode_parquet(rejects, ts)
        reasons = pc.value_counts(rejects.column("_reject_reason")).to_pylist()
        sidecar = SidecarDocument(
            **common,
            object_key=key,
            metadata_key=sidecar_key(key),
            row_count=rejects.num_rows,
            reject_reasons={r["values"]: r["counts"] for r in reasons},
            content_sha256=hashlib.sha256(body).hexdigest(),
            content_bytes=len(body),
        ).to_json()
        stored = ctx.store.put(claim.bucket, key, body, "application/vnd.apache.parquet")
        ctx.store.put(claim.bucket, sidecar["metadata_key"], _json(sidecar), "application/json")
        result.objects.append(stored)
        result.bytes_written += stored.size
        result.rows_rejected = rejects.num_rows
    crashpoint("before_watermark")
    return result


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, indent=1).encode()
