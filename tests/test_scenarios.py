"""The scenario rules as pure functions: no database, no S3."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from edge_agent.scenarios import (
    EmergencyThresholds,
    FilteredRules,
    ScenarioSettings,
    emergency_reasons,
    shape,
    split_by_hour,
)
from edge_agent.source import EVENT_TIME_TYPE, parse_event_times

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _rows(**columns: list[object]) -> pa.Table:
    n = len(next(iter(columns.values())))
    base = {
        "id": list(range(1, n + 1)),
        "timestamp": ["2026-11-23T10:30:00+00:00"] * n,
        "sensor_id": ["AMS_000001"] * n,
        "temperature": [61.0] * n,
        "humidity": [3.0] * n,
        "pressure": [12.0] * n,
        "vibration": [1.5] * n,
        "voltage": [12.0] * n,
        "anomaly_flag": [0] * n,
        "anomaly_type": [None] * n,
        "latitude": [52.123456] * n,
        "longitude": [4.987654] * n,
    }
    base.update(columns)
    types = {"anomaly_type": pa.string(), "anomaly_flag": pa.int64(), "id": pa.int64()}
    return pa.table({k: pa.array(v, types.get(k)) for k, v in base.items()})


def _shape(scenario: str, table: pa.Table, settings: ScenarioSettings | None = None):
    times = parse_event_times(table.column("timestamp"))
    return shape(scenario, table, times, "timestamp", settings or ScenarioSettings(), NOW)


def test_schematized_rules_each_reject_their_row() -> None:
    table = _rows(
        sensor_id=["AMS_000001", "ams_000001", "AMS_000001", "AMS_000001", "AMS_000001",
                   "AMS_000001", "AMS_000001"],
        temperature=[61.0, 61.0, 151.0, 61.0, 61.0, None, 61.0],
        anomaly_flag=[0, 0, 0, 1, 1, 1, 0],
        anomaly_type=[None, None, None, None, "spike", "missing_data", None],
        timestamp=["2026-11-23T10:30:00+00:00"] * 6 + ["2026-11-23T13:30:00+00:00"],
    )  # fmt: skip
    shaped = _shape("schematized", table)
    assert shaped.rows.column("id").to_pylist() == [1, 5, 6]
    rejected = shaped.rejected
    ids, why = rejected.column("id").to_pylist(), rejected.column("_reject_reason").to_pylist()
    reasons = dict(zip(ids, why, strict=True))
    assert reasons == {
        2: "sensor_id_format",
        3: "temperature_out_of_range",
        4: "anomaly_type_missing_or_unknown",
        7: "timestamp_in_future",
    }
    assert shaped.rows.schema.field("timestamp").type == EVENT_TIME_TYPE


def test_schematized_range_edges_are_inclusive() -> None:
    table = _rows(
        humidity=[0.0, 100.0, -0.1, 100.1],
        latitude=[-90.0, 90.0, 0.0, 0.0],
        longitude=[-180.0, 180.0, 0.0, 0.0],
        voltage=[0.0, 24.0, 12.0, 12.0],
    )
    assert _shape("schematized", table).rows.column("id").to_pylist() == [1, 2]


def test_emergency_thresholds_are_configurable() -> None:
    table = _rows(
        temperature=[61.0, 75.5, 51.0, 61.0, 61.0],
        voltage=[12.0, 12.0, 12.0, 12.5, 12.0],
        anomaly_flag=[0, 0, 0, 0, 1],
        anomaly_type=[None, None, None, None, "noise"],
    )
    reasons = emergency_reasons(table, EmergencyThresholds()).to_pylist()
    assert reasons == ["", "temperature_high", "temperature_low", "voltage_high", "anomaly:noise"]
    stricter = EmergencyThresholds(temperature_high=80.0, voltage_high=13.0)
    assert emergency_reasons(table, stricter).to_pylist()[1] == ""
    shaped = _shape("emergency", table)
    assert shaped.rows.column("id").to_pylist() == [2, 3, 4, 5] and shaped.removed == 1


def test_filtered_rounds_and_removes() -> None:
    table = _rows(humidity=[3.0, 140.0], latitude=[52.123456, 52.987654])
    settings = ScenarioSettings(filtered=FilteredRules(coordinate_precision=2,
                                                       drop_columns=("sensor_id",)))  # fmt: skip
    shaped = _shape("filtered", table, settings)
    assert shaped.removed == 1
    assert shaped.rows.column("latitude").to_pylist() == [52.12]
    assert shaped.rows.column("longitude").to_pylist() == [4.99]
    assert "sensor_id" not in shaped.rows.column_names


def test_parse_event_times_handles_offsets_naive_and_garbage() -> None:
    values = pa.array(["2026-11-23T10:00:00+02:00", "2026-11-23 08:30:00", "not a time", None])
    parsed = parse_event_times(values).to_pylist()
    assert parsed[0] == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    assert parsed[1] == datetime(2026, 11, 23, 8, 30, tzinfo=UTC)  # naive means UTC
    assert parsed[2] is None and parsed[3] is None
    epoch = parse_event_times(pa.array([1_700_000_000.5])).to_pylist()[0]
    assert epoch == datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC)


def test_split_by_hour_groups_rows_and_keeps_id_order() -> None:
    base = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    stamps = [base + timedelta(minutes=m) for m in (5, 65, 10, 70, 130, 15)]
    table = pa.table({"id": [1, 2, 3, 4, 5, 6]})
    parts = split_by_hour(table, pa.array(stamps, EVENT_TIME_TYPE))
    assert [(h.hour, t.column("id").to_pylist()) for h, t, _ in parts] == [
        (10, [1, 3, 6]),
        (11, [2, 4]),
        (12, [5]),
    ]
