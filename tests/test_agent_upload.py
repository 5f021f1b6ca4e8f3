"""Uploads against a real S3 endpoint: layout, sidecars, scenarios, incremental and late rows."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from edge_agent.contract import SIDECAR_FIELDS, EmergencyThresholds, schema_fingerprint
from edge_agent.simulate import SimulationSpec, simulate
from tests.conftest import (
    OTHER_REGION,
    bucket,
    landed_ids,
    list_keys,
    read_parquet,
    run_agent,
    source_ids,
    upload,
)

KEY = re.compile(
    r"^year=(\d{4})/month=(\d{2})/day=(\d{2})/hour=(\d{2})/n1/[0-9a-f]{8}-\d{12}-\d{12}\.parquet$"
)


def _sidecar(s3: Any, bucket_name: str, key: str) -> dict[str, Any]:
    body = s3.get_object(Bucket=bucket_name, Key=key.removesuffix(".parquet") + ".json")["Body"]
    return json.loads(body.read())


def test_raw_upload_lands_every_row_once_in_event_hour_partitions(
    s3: Any, node_db: Path, bucket_prefix: str, agent_env: dict[str, str]
) -> None:
    upload(node_db, bucket_prefix, agent_env, "--batch-rows", "700")
    raw = bucket(bucket_prefix, "raw")
    data, rejected = landed_ids(s3, raw)
    assert set(data) == source_ids(node_db) and set(data.values()) == {1}
    assert not rejected

    data_keys = [k for k in list_keys(s3, raw) if k.endswith(".parquet")]
    assert data_keys and all(KEY.match(k) for k in data_keys)
    for key in data_keys:
        table = read_parquet(s3, raw, key)
        sidecar = _sidecar(s3, raw, key)
        body = s3.get_object(Bucket=raw, Key=key)["Body"].read()
        assert sidecar["content_sha256"] == hashlib.sha256(body).hexdigest()
        assert sidecar["row_count"] == table.num_rows
        assert set(sidecar) == set(SIDECAR_FIELDS)  # the landing contract, field for field
        assert sidecar["schema_fingerprint"] == schema_fingerprint(table.schema)
        assert sidecar["scenario"] == "raw" and sidecar["node_id"] == "n1"
        assert sidecar["region"] == "us-east-1" and sidecar["agent_version"]
        year, month, day, hour = map(int, KEY.match(key).groups())  # type: ignore[union-attr]
        start = datetime(year, month, day, hour, tzinfo=UTC)
        first = datetime.fromisoformat(sidecar["first_timestamp"])
        last = datetime.fromisoformat(sidecar["last_timestamp"])
        assert start <= first <= last < start + timedelta(hours=1)
        assert sidecar["partition"]["hour"] == f"{start:%Y-%m-%d-%H}:00"
        ids = table.column("id").to_pylist()
        span = sidecar["watermark"]
        assert all(span["start_exclusive"] < i <= span["end_inclusive"] for i in ids)
        assert ids == sorted(ids)  # rows keep their source order inside an object

    history = run_agent("pipeline", "history", "--db", str(node_db), env=agent_env).stdout
    assert "success" in history and "uploaded=3000" in history


def test_second_run_uploads_only_new_rows(
    s3: Any, node_db: Path, bucket_prefix: str, agent_env: dict[str, str]
) -> None:
    upload(node_db, bucket_prefix, agent_env)
    raw = bucket(bucket_prefix, "raw")
    first_keys = set(list_keys(s3, raw))
    nothing_new = upload(node_db, bucket_prefix, agent_env)
    assert set(list_keys(s3, raw)) == first_keys
    assert "uploaded 0 rows" in nothing_new.stderr

    simulate(node_db, SimulationSpec(rows=500, node_id="n1", seed=12))
    upload(node_db, bucket_prefix, agent_env)
    data, _ = landed_ids(s3, raw)
    assert len(source_ids(node_db)) == 3_500
    assert set(data) == source_ids(node_db) and set(data.values()) == {1}
    status = run_agent("status", "--db", str(node_db), env=agent_env).stdout
    assert "rows not yet uploaded: 0" in status


def test_late_and_clock_skewed_rows_are_not_lost(
    s3: Any, node_db: Path, bucket_prefix: str, agent_env: dict[str, str]
) -> None:
    """Watermark is the insertion id, not event time: rows stamped in the past still upload."""
    upload(node_db, bucket_prefix, agent_env)
    # The node's clock jumps back two days, and a buffer of old readings is flushed.
    old = datetime.now(UTC) - timedelta(days=2)
    simulate(node_db, SimulationSpec(rows=200, node_id="n1", end=old, seed=13))
    simulate(node_db, SimulationSpec(rows=200, node_id="n1", late_fraction=1.0, seed=14))
    upload(node_db, bucket_prefix, agent_env)

    raw = bucket(bucket_prefix, "raw")
    data, _ = landed_ids(s3, raw)
    assert set(data) == source_ids(node_db) and set(data.values()) == {1}
    old_day = f"year={old:%Y}/month={old:%m}/day={old:%d}/"
    old_keys = [k for k in list_keys(s3, raw, old_day) if k.endswith(".parquet")]
    late_ids = {i for k in old_keys for i in read_parquet(s3, raw, k).column("id").to_pylist()}
    assert {i for i in data if 3_000 < i <= 3_200} <= late_ids


def _rows(db: Path) -> dict[int, dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return {r["id"]: dict(r) for r in conn.execute("SELECT * FROM sensor_readings")}


def _needs_attention(row: dict[str, Any], t: EmergencyThresholds) -> bool:
    def outside(metric: str) -> bool:
        value = row[metric]
        high, low = getattr(t, f"{metric}_high"), getattr(t, f"{metric}_low")
        return value is not None and (value > high or value < low)

    metrics = ("temperature", "pressure", "voltage", "humidity")
    return row["anomaly_flag"] == 1 or any(outside(m) for m in metrics)


def test_emergency_uploads_exactly_the_rows_that_need_attention(
    s3: Any, tmp_path: Path, bucket_prefix: str, agent_env: dict[str, str]
) -> None:
    db = tmp_path / "node.db"
    simulate(db, SimulationSpec(rows=4_000, node_id="n1", anomaly_probability=0.05, seed=21))
    run_agent("pipeline", "set", "emergency", "--by", "test", "--db", str(db), env=agent_env)
    upload(db, bucket_prefix, agent_env)

    data, _ = landed_ids(s3, bucket(bucket_prefix, "emergency"))
    rows = _rows(db)
    expected = {i for i, r in rows.items() if _needs_attention(r, EmergencyThresholds())}
    assert expected and set(data) == expected and set(data.values()) == {1}
    key = next(k for k in list_keys(s3, bucket(bucket_prefix, "emergency")) if k.endswith("quet"))
    reasons = read_parquet(s3, bucket(bucket_prefix, "emergency"), key).column("emergency_reason")
    assert all(reasons.to_pylist())
    assert not list_keys(s3, bucket(bucket_prefix, "raw"))


def test_schematized_keeps_invalid_rows_apart_with_reasons(
    s3: Any, tmp_path: Path, bucket_prefix: str, agent_env: dict[str, str]
) -> None:
    db = tmp_path / "node.db"
    simulate(db, SimulationSpec(rows=3_000, node_id="n1", invalid_fraction=0.05, seed=22))
    # A clock two hours ahead: the 'not in the future' rule must catch these.
    simulate(db, SimulationSpec(rows=50, node_id="n1", clock_skew_seconds=7200, seed=23))
    run_agent("pipeline", "set", "schematized", "--db", str(db), env=agent_env)
    upload(db, bucket_prefix, agent_env)

    name = bucket(bucket_prefix, "schematized")
    data, rejected = landed_ids(s3, name)
    assert set(data) | set(rejected) == source_ids(db)
    assert not set(data) & set(rejected) and set((data + rejected).values()) == {1}
    assert {3_001, 3_050} <= set(rejected)  # future timestamps
    rejects = [k for k in list_keys(s3, name, "_rejected/") if k.endswith(".parquet")]
    reasons = {
        r for k in rejects for r in read_parquet(s3, name, k).column("_reject_reason").to_pylist()
    }
    for rule in ("sensor_id_format", "humidity_out_of_range", "latitude_out_of_range",
                 "anomaly_type_missing_or_unknown", "timestamp_in_future"):  # fmt: skip
        assert any(rule in r for r in reasons), rule
    sample = next(k for k in list_keys(s3, name, "year=") if k.endswith(".parquet"))
    schema = read_parquet(s3, name, sample).schema
    assert schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert schema.field("manufacture_date").type == pa.date32()


def test_filtered_rounds_coordinates_and_removes_out_of_range_rows(
    s3: Any, tmp_path: Path, bucket_prefix: str, agent_env: dict[str, str]
) -> None:
    db = tmp_path / "node.db"
    simulate(db, SimulationSpec(rows=2_000, node_id="n1", invalid_fraction=0.05, seed=24))
    config = tmp_path / "agent.yaml"
    config.write_text("filtered:\n  coordinate_precision: 1\n  drop_columns: [serial_number]\n")
    run_agent("pipeline", "set", "filtered", "--db", str(db), env=agent_env)
    upload(db, bucket_prefix, agent_env, "--config", str(config))

    name = bucket(bucket_prefix, "filtered")
    keys = [k for k in list_keys(s3, name) if k.endswith(".parquet")]
    tables = [read_parquet(s3, name, k) for k in keys]
    rows = [r for t in tables for r in t.to_pylist()]
    assert rows and all("serial_number" not in t.column_names for t in tables)
    assert all(round(r["latitude"], 1) == r["latitude"] for r in rows)
    assert all(r["humidity"] is None or 0 <= r["humidity"] <= 100 for r in rows)
    assert all(-90 <= r["latitude"] <= 90 for r in rows)
    source = _rows(db)
    out_of_range = {
        i for i, r in source.items() if r["humidity"] == 140.0 or r["latitude"] == 123.0
    }
    assert out_of_range and not out_of_range & {r["id"] for r in rows}


def test_regional_routes_raw_rows_to_the_nodes_region(
    s3: Any, node_db: Path, bucket_prefix: str, agent_env: dict[str, str]
) -> None:
    run_agent("pipeline", "set", "regional", "--db", str(node_db), env=agent_env)
    upload(node_db, bucket_prefix, {**agent_env, "AWS_REGION": OTHER_REGION})
    data, _ = landed_ids(s3, bucket(bucket_prefix, "regional", OTHER_REGION))
    assert set(data) == source_ids(node_db)
    assert not list_keys(s3, bucket(bucket_prefix, "regional"))


def test_pipeline_change_takes_effect_without_restart(
    s3: Any, node_db: Path, bucket_prefix: str, agent_env: dict[str, str]
) -> None:
    agent = subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "upload", "--interval", "0.3", "--db", str(node_db),
         "--node-id", "n1", "--bucket-prefix", bucket_prefix],
        env=agent_env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _wait_for(lambda: len(landed_ids(s3, bucket(bucket_prefix, "raw"))[0]) == 3_000)
        run_agent("pipeline", "set", "emergency", "--db", str(node_db), env=agent_env)
        simulate(node_db, SimulationSpec(rows=2_000, node_id="n1", anomaly_probability=0.2))
        _wait_for(lambda: bool(list_keys(s3, bucket(bucket_prefix, "emergency"))))
    finally:
        agent.terminate()
        agent.wait(timeout=30)
    assert agent.returncode == 0  # SIGTERM is a clean stop
    raw, _ = landed_ids(s3, bucket(bucket_prefix, "raw"))
    assert max(raw) == 3_000  # the new rows went by the new pipeline type


def _wait_for(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")
