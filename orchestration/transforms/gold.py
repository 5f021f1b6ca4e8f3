"""The gold tables as data: primary key, description and the SQL that builds them from silver."""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.contract import EmergencyThresholds

METRICS = ("temperature", "humidity", "pressure", "voltage", "vibration")
WINDOW = "_partition_hour >= $start AND _partition_hour < $end"


@dataclass(frozen=True)
class GoldTable:
    entity: str
    primary_key: tuple[str, ...]
    description: str
    select: str  # over silver_sensor_readings; `$start`/`$end` bound the hours
    partitioned: bool = True


def _stats() -> str:
    return ", ".join(
        f"avg({m}) AS avg_{m}, min({m}) AS min_{m}, max({m}) AS max_{m}" for m in METRICS
    )


def _attention(t: EmergencyThresholds) -> str:
    checks = [
        "CASE WHEN anomaly_flag = 1 THEN 'anomaly:' || coalesce(anomaly_type, 'unknown') END",
        *(
            f"CASE WHEN {m} > {getattr(t, f'{m}_high')} THEN '{m}_high' "
            f"WHEN {m} < {getattr(t, f'{m}_low')} THEN '{m}_low' END"
            for m in ("temperature", "pressure", "voltage", "humidity")
        ),
    ]
    return f"concat_ws(';', {', '.join(checks)})"


GOLD_TABLES: tuple[GoldTable, ...] = (
    GoldTable(
        "sensor_hourly_stats",
        ("sensor_id", "hour"),
        "Per sensor and hour: readings, min/avg/max of each metric, anomaly rate.",
        # The node and region of the latest reading: deterministic on both engines.
        "SELECT sensor_id, _partition_hour AS hour, arg_max(node_id, event_time) AS node_id, "
        f"arg_max(region, event_time) AS region, count(*) AS readings, {_stats()}, "
        "sum(coalesce(anomaly_flag, 0)) AS anomalies, "
        "avg(coalesce(anomaly_flag, 0))::DOUBLE AS anomaly_rate "
        f"FROM silver_sensor_readings WHERE {WINDOW} GROUP BY sensor_id, hour",
    ),
    GoldTable(
        "region_hourly_stats",
        ("region", "hour"),
        "Per region and hour: readings, nodes, sensors, min/avg/max of each metric, anomaly rate.",
        f"SELECT region, _partition_hour AS hour, count(*) AS readings, "
        f"count(DISTINCT node_id) AS nodes, count(DISTINCT sensor_id) AS sensors, {_stats()}, "
        "avg(coalesce(anomaly_flag, 0))::DOUBLE AS anomaly_rate "
        f"FROM silver_sensor_readings WHERE {WINDOW} GROUP BY region, hour",
    ),
    GoldTable(
        "anomalies",
        ("sensor_id", "event_time"),
        "Readings that need attention: flagged anomalies and emergency-threshold breaches.",
        "SELECT * FROM (SELECT sensor_id, event_time, node_id, region, "
        f"{_attention(EmergencyThresholds())} AS reason, anomaly_type, "
        f"{', '.join(METRICS)}, latitude, longitude, source_scenario, _partition_hour AS hour "
        f"FROM silver_sensor_readings WHERE {WINDOW}) AS attention WHERE length(reason) > 0",
    ),
)


def fleet_health_select(silent_after_hours: int) -> str:
    """Last reading per node and sensor, readings in the last 24 h, and who went silent."""
    return (
        "SELECT node_id, sensor_id, arg_max(region, event_time) AS region, "
        "max(event_time) AS last_reading_at, "
        "arg_max(temperature, event_time) AS last_temperature, "
        "count(*) FILTER (WHERE event_time >= current_timestamp - INTERVAL 24 HOUR) "
        "AS readings_24h, "
        f"CASE WHEN max(event_time) < current_timestamp - INTERVAL {int(silent_after_hours)} HOUR "
        "THEN 'silent' ELSE 'ok' END AS status "
        "FROM silver_sensor_readings GROUP BY node_id, sensor_id"
    )


READINGS_ALL_REGIONS_SELECT = (
    "SELECT region, node_id, sensor_id, event_time, temperature, humidity, pressure, voltage, "
    "vibration, anomaly_flag, anomaly_type, latitude, longitude, source_scenario "
    "FROM silver_sensor_readings"
)
