"""Sensor simulator: writes generator-shaped readings, with anomalies, skew and late rows."""

from __future__ import annotations

import math
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge_agent.schema import SENSOR_COLUMNS, SENSOR_TABLE, SENSOR_TABLE_DDL

# Simulator defaults (mean, standard deviation), from the generator's configuration.
METRICS: dict[str, tuple[float, float]] = {
    "temperature": (61.0, 2.0),
    "humidity": (3.0, 0.5),
    "pressure": (12.0, 0.5),
    "voltage": (12.0, 0.1),
    "vibration": (1.5, 0.5),
}
ANOMALY_WEIGHTS: dict[str, float] = {
    "spike": 0.3,
    "trend": 0.2,
    "pattern": 0.2,
    "missing_data": 0.15,
    "noise": 0.15,
}
SITES = (
    ("Amsterdam", 52.3676, 4.9041, "Europe/Amsterdam"),
    ("Austin", 30.2672, -97.7431, "America/Chicago"),
    ("Osaka", 34.6937, 135.5023, "Asia/Tokyo"),
    ("Sao Paulo", -23.5505, -46.6333, "America/Sao_Paulo"),
    ("Perth", -31.9523, 115.8613, "Australia/Perth"),
)
MANUFACTURERS = (("SensorTech", "ST-4000"), ("EnvMonitors", "EM-220"), ("IoTPro", "IP-90"))
SENSOR_TYPES = ("environmental", "industrial", "hvac")
INSERT_COLUMNS = tuple(name for name, _ in SENSOR_COLUMNS if name != "id")
INSERT_SQL = (
    f"INSERT INTO {SENSOR_TABLE} ({', '.join(INSERT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in INSERT_COLUMNS)})"
)


@dataclass(frozen=True)
class SimulationSpec:
    """What to simulate on one node."""

    rows: int
    sensors: int = 4
    node_id: str = "node-1"
    end: datetime | None = None
    interval_seconds: float = 1.0
    anomaly_probability: float = 0.01
    clock_skew_seconds: float = 0.0
    late_fraction: float = 0.0
    late_by_seconds: float = 6 * 3600.0
    invalid_fraction: float = 0.0
    seed: int | None = None


@dataclass
class _Sensor:
    sensor_id: str
    static: dict[str, object]
    drift: float = 0.0


def _make_sensors(spec: SimulationSpec, rng: random.Random) -> list[_Sensor]:
    site_rng = random.Random(spec.node_id)
    city, lat, lon, tz = site_rng.choice(SITES)
    sensors = []
    for index in range(spec.sensors):
        manufacturer, model = rng.choice(MANUFACTURERS)
        prefix = city.replace(" ", "")[:3].upper()
        sensors.append(
            _Sensor(
                sensor_id=f"{prefix}_{rng.randrange(1_000_000):06d}",
                static={
                    "firmware_version": rng.choice(("1.4.0", "2.0.1", "2.1.0-beta")),
                    "model": model,
                    "manufacturer": manufacturer,
                    "location": city,
                    "latitude": round(lat + rng.uniform(-0.05, 0.05), 6),
                    "longitude": round(lon + rng.uniform(-0.05, 0.05), 6),
                    "original_timezone": tz,
                    "serial_number": f"SN-{spec.node_id}-{index:03d}",
                    "manufacture_date": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                    "deployment_type": rng.choice(("fixed", "mobile")),
                    "installation_date": f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                    "height_meters": round(rng.uniform(0.5, 30.0), 2),
                    "orientation_degrees": round(rng.uniform(0, 360), 1),
                    "instance_id": spec.node_id,
                    "sensor_type": rng.choice(SENSOR_TYPES),
                },
            )
        )
    return sensors


def _reading(
    sensor: _Sensor, step: int, rng: random.Random, spec: SimulationSpec
) -> dict[str, object]:
    values: dict[str, float | None] = {
        name: rng.gauss(mean, sd) for name, (mean, sd) in METRICS.items()
    }
    anomaly: str | None = None
    if rng.random() < spec.anomaly_probability:
        anomaly = rng.choices(tuple(ANOMALY_WEIGHTS), weights=tuple(ANOMALY_WEIGHTS.values()))[0]
    if anomaly == "spike":
        metric = rng.choice(("temperature", "humidity", "pressure", "voltage"))
        values[metric] = METRICS[metric][0] * rng.uniform(1.5, 3.0)
    elif anomaly == "trend":
        sensor.drift = min(sensor.drift + 0.5, 30.0)
        values["temperature"] = (values["temperature"] or 0.0) + sensor.drift
    elif anomaly == "pattern":
        values["temperature"] = (values["temperature"] or 0.0) + 15.0 * math.sin(step / 10.0)
    elif anomaly == "missing_data":
        for metric in rng.sample(tuple(METRICS), rng.randint(1, len(METRICS))):
            values[metric] = None
    elif anomaly == "noise":
        values = {name: rng.gauss(mean, sd * 5) for name, (mean, sd) in METRICS.items()}
    if values["humidity"] is not None:
        values["humidity"] = max(values["humidity"], 0.0)
    if values["vibration"] is not None:
        values["vibration"] = abs(values["vibration"])
    row: dict[str, object] = {
        "sensor_id": sensor.sensor_id,
        **{k: (round(v, 4) if v is not None else None) for k, v in values.items()},
        "status_code": 1 if anomaly else 0,
        "anomaly_flag": 1 if anomaly else 0,
        "anomaly_type": anomaly,
        **sensor.static,
    }
    if spec.invalid_fraction and rng.random() < spec.invalid_fraction:
        _corrupt(row, rng)
    return row


def _corrupt(row: dict[str, object], rng: random.Random) -> None:
    """Make one schematized rule fail, the way misconfigured firmware does."""
    fault = rng.choice(("sensor_id", "humidity", "latitude", "anomaly_type"))
    if fault == "sensor_id":
        row["sensor_id"] = str(row["sensor_id"]).lower()
    elif fault == "humidity":
        row["humidity"] = 140.0
    elif fault == "latitude":
        row["latitude"] = 123.0
    else:
        row["anomaly_flag"], row["anomaly_type"] = 1, None


def generate_rows(spec: SimulationSpec) -> Iterator[tuple[object, ...]]:
    """Readings in insertion order; sensors take turns, one reading per interval."""
    rng = random.Random(spec.seed)
    sensors = _make_sensors(spec, rng)
    steps = math.ceil(spec.rows / max(spec.sensors, 1))
    end = spec.end or datetime.now(UTC)
    start = end - timedelta(seconds=spec.interval_seconds * steps)
    skew = timedelta(seconds=spec.clock_skew_seconds)
    late_by = timedelta(seconds=spec.late_by_seconds)
    for index in range(spec.rows):
        step, sensor = divmod(index, len(sensors))
        stamp = start + timedelta(seconds=spec.interval_seconds * step) + skew
        if spec.late_fraction and rng.random() < spec.late_fraction:
            stamp -= late_by
        row = _reading(sensors[sensor], step, rng, spec)
        row["timestamp"] = stamp.isoformat(timespec="microseconds")
        yield tuple(row[name] for name in INSERT_COLUMNS)


def create_sensor_table(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(SENSOR_TABLE_DDL)


def simulate(db_path: Path, spec: SimulationSpec, chunk_rows: int = 20_000) -> int:
    """Append `spec.rows` readings to the node database; returns the rows written."""
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        create_sensor_table(conn)
        chunk: list[tuple[object, ...]] = []
        written = 0
        for row in generate_rows(spec):
            chunk.append(row)
            if len(chunk) >= chunk_rows:
                written += _insert(conn, chunk)
                chunk = []
        if chunk:
            written += _insert(conn, chunk)
        return written
    finally:
        conn.close()


def _insert(conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> int:
    with conn:
        conn.executemany(INSERT_SQL, rows)
    return len(rows)
