"""What each warehouse column holds: the descriptions shown in the UI's column view, for silver,
gold and the synced tables alike (a synced table keeps its source's columns)."""

from __future__ import annotations

from orchestration.transforms.gold import METRICS
from orchestration.transforms.silver import DESCRIPTIONS as SILVER_DESCRIPTIONS

DESCRIPTIONS: dict[str, str] = {
    **SILVER_DESCRIPTIONS,
    **{m: f"{m} reading, in the unit the sensor reports" for m in METRICS},
    "status_code": "sensor status code as the node reported it (0 = ok)",
    "anomaly_flag": "1 when the node flagged the reading as anomalous",
    "anomaly_type": "kind of anomaly the node flagged (spike, trend, pattern, missing_data, noise)",
    "firmware_version": "sensor firmware version",
    "model": "sensor model",
    "manufacturer": "sensor manufacturer",
    "location": "site the sensor is installed at",
    "latitude": "sensor latitude, degrees",
    "longitude": "sensor longitude, degrees",
    "sensor_type": "kind of sensor",
    "id": "row id in the node's SQLite table (the agent's watermark key)",
    "timestamp": "when the sensor took the reading, as the node recorded it",
    "serial_number": "sensor serial number",
    "manufacture_date": "when the sensor was made",
    "installation_date": "when the sensor was installed",
    "deployment_type": "how the sensor is deployed",
    "height_meters": "mounting height, metres",
    "orientation_degrees": "mounting orientation, degrees",
    "instance_id": "the node instance the generator ran on",
    "original_timezone": "the node's local time zone",
    "hour": "event hour, UTC: the Dagster partition",
    "readings": "readings in the hour",
    "nodes": "distinct edge nodes that sent readings in the hour",
    "sensors": "distinct sensors that sent readings in the hour",
    "anomalies": "readings flagged as anomalous",
    "anomaly_rate": "share of readings flagged as anomalous (0..1)",
    "reason": "why the reading needs attention: anomaly:<type> and/or <metric>_high/_low",
    "last_reading_at": "when this sensor's latest reading was taken",
    "last_temperature": "temperature at the latest reading",
    "readings_24h": "readings in the last 24 hours",
    "status": "ok, or silent when the latest reading is older than the silence threshold",
    **{
        f"{agg}_{m}": f"{label} {m} reading in the hour"
        for m in METRICS
        for agg, label in (("avg", "mean"), ("min", "lowest"), ("max", "highest"))
    },
}
