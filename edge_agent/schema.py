"""The sensor table as the Bacalhau sensor-log-generator writes it, and the agent's own tables."""

from __future__ import annotations

SENSOR_TABLE = "sensor_readings"

# (name, declared SQLite type) in the generator's column order.
SENSOR_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "INTEGER"),
    ("timestamp", "TEXT"),
    ("sensor_id", "TEXT"),
    ("temperature", "REAL"),
    ("humidity", "REAL"),
    ("pressure", "REAL"),
    ("vibration", "REAL"),
    ("voltage", "REAL"),
    ("status_code", "INTEGER"),
    ("anomaly_flag", "INTEGER"),
    ("anomaly_type", "TEXT"),
    ("firmware_version", "TEXT"),
    ("model", "TEXT"),
    ("manufacturer", "TEXT"),
    ("location", "TEXT"),
    ("latitude", "REAL"),
    ("longitude", "REAL"),
    ("original_timezone", "TEXT"),
    ("serial_number", "TEXT"),
    ("manufacture_date", "TEXT"),
    ("deployment_type", "TEXT"),
    ("installation_date", "TEXT"),
    ("height_meters", "REAL"),
    ("orientation_degrees", "REAL"),
    ("instance_id", "TEXT"),
    ("sensor_type", "TEXT"),
)

SENSOR_TABLE_DDL = f"""
CREATE TABLE IF NOT EXISTS {SENSOR_TABLE} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp TEXT NOT NULL,
    sensor_id TEXT NOT NULL,
    temperature REAL,
    humidity REAL,
    pressure REAL,
    vibration REAL,
    voltage REAL,
    status_code INTEGER,
    anomaly_flag INTEGER DEFAULT 0,
    anomaly_type TEXT,
    firmware_version TEXT,
    model TEXT,
    manufacturer TEXT,
    location TEXT,
    latitude REAL,
    longitude REAL,
    original_timezone TEXT,
    serial_number TEXT,
    manufacture_date TEXT,
    deployment_type TEXT,
    installation_date TEXT,
    height_meters REAL,
    orientation_degrees REAL,
    instance_id TEXT,
    sensor_type TEXT
)
"""

# Tables the agent itself keeps in the node's database. Never mistaken for the sensor table.
PIPELINE_CONFIG_TABLE = "pipeline_config"
PIPELINE_EXECUTIONS_TABLE = "pipeline_executions"
UPLOAD_STATE_TABLE = "upload_state"
UPLOAD_CLAIMS_TABLE = "upload_claims"
REPORT_OUTBOX_TABLE = "report_outbox"
REPORT_DEAD_LETTERS_TABLE = "report_dead_letters"
AGENT_TABLES = frozenset(
    {
        PIPELINE_CONFIG_TABLE,
        PIPELINE_EXECUTIONS_TABLE,
        UPLOAD_STATE_TABLE,
        UPLOAD_CLAIMS_TABLE,
        REPORT_OUTBOX_TABLE,
        REPORT_DEAD_LETTERS_TABLE,
    }
)
