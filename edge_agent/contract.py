"""The landing contract: what edge agents write and the lakehouse reads, in one module.

Scenarios, bucket and key naming, the sidecar's fields and schema fingerprint, the physical
ranges and anomaly types a valid reading keeps to, the emergency thresholds, and the kind of the
Pipes message that reports an upload. The agent and the lakehouse both import this module; the
lakehouse imports nothing else of the agent. Every piece that comes from users is validated.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from edge_agent.errors import ConfigError

SCENARIOS = ("raw", "schematized", "filtered", "emergency", "regional")
# The Pipes custom message an agent launched by Dagster sends for each upload.
PIPES_MESSAGE_KIND = "landing_materialization"

# What a valid reading keeps to (inclusive; None means unbounded).
SENSOR_ID_PATTERN = r"^[A-Z]{3}_[0-9]{6}$"
ANOMALY_TYPES = ("spike", "trend", "pattern", "missing_data", "noise")
PHYSICAL_RANGES: dict[str, tuple[float | None, float | None]] = {
    "temperature": (-50.0, 150.0),
    "humidity": (0.0, 100.0),
    "pressure": (0.0, 20.0),
    "voltage": (0.0, 24.0),
    "vibration": (0.0, None),
    "latitude": (-90.0, 90.0),
    "longitude": (-180.0, 180.0),
}

SIDECAR_FORMAT = "edge-agent/landing-batch"
SIDECAR_FORMAT_VERSION = 1  # the newest this contract reads; a newer agent's objects are refused


@dataclass(frozen=True)
class SidecarDocument:
    """The sidecar JSON the agent writes beside each data object (after it: a sidecar means
    its object is complete). `Sidecar.parse` is how the lakehouse reads it back."""

    node_id: str
    region: str
    scenario: str
    source_table: str
    batch_id: str
    watermark: dict[str, Any]
    rules: list[str]
    object_key: str
    metadata_key: str
    row_count: int
    content_sha256: str
    content_bytes: int
    agent_version: str
    # Data objects (not the rejects' object) also carry these.
    partition: dict[str, str] | None = None
    first_timestamp: str | None = None
    last_timestamp: str | None = None
    schema_fingerprint: str | None = None
    schema: list[dict[str, str]] | None = None
    content_md5: str | None = None
    reject_reasons: dict[str, int] | None = None  # the rejects' object only
    format: str = SIDECAR_FORMAT
    format_version: int = SIDECAR_FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        """The document's fields, those that apply to this object."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


# Readers may rely on these fields of a data object's sidecar.
SIDECAR_FIELDS = tuple(
    f.name for f in dataclasses.fields(SidecarDocument) if f.name != "reject_reasons"
)


class SidecarError(ValueError):
    """A sidecar this contract cannot read: the object is quarantined with this reason."""


@dataclass(frozen=True)
class Sidecar:
    """The sidecar fields readers rely on, typed and checked (any node can write any bytes)."""

    node_id: str
    batch_id: str
    row_count: int
    content_sha256: str
    region: str | None
    format_version: int
    # The data object's columns and their Arrow types, as the agent wrote them (None: the
    # rejects' object, which declares none).
    schema: tuple[tuple[str, str], ...] | None = None

    @classmethod
    def parse(cls, raw: bytes) -> Sidecar:
        """The sidecar in `raw`, or SidecarError saying why not (cap its size before reading)."""
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than Python goes
            raise SidecarError("metadata sidecar is not valid JSON") from None
        if not isinstance(data, dict):
            raise SidecarError("metadata sidecar is not a JSON object")
        fmt, version = data.get("format"), data.get("format_version")
        if fmt != SIDECAR_FORMAT or type(version) is not int:
            raise SidecarError(
                f"metadata sidecar format {_shown(fmt)} version {_shown(version)} is not "
                f"{SIDECAR_FORMAT} version 1-{SIDECAR_FORMAT_VERSION}"
            )
        if version > SIDECAR_FORMAT_VERSION:
            raise SidecarError(
                f"metadata sidecar format version {version} is newer than this lakehouse reads "
                f"({SIDECAR_FORMAT_VERSION}): upgrade the lakehouse before the agents"
            )
        region = data.get("region")
        sidecar = cls(
            node_id=_field(data, "node_id", str),
            batch_id=_field(data, "batch_id", str),
            row_count=_field(data, "row_count", int),
            content_sha256=_field(data, "content_sha256", str),
            region=None if region is None else _field(data, "region", str),
            format_version=version,
            schema=_schema(data.get("schema")),
        )
        if sidecar.row_count < 0 or not re.fullmatch(r"[0-9a-f]{64}", sidecar.content_sha256):
            raise SidecarError("metadata sidecar has a negative row_count or a malformed sha256")
        return sidecar


def _schema(value: Any) -> tuple[tuple[str, str], ...] | None:
    """The sidecar's `schema` ([{"name": ..., "type": ...}, ...]) as (name, type) pairs."""
    if value is None:
        return None
    if isinstance(value, list) and all(
        isinstance(c, dict) and type(c.get("name")) is str and type(c.get("type")) is str
        for c in value
    ):
        return tuple((c["name"], c["type"]) for c in value)
    raise SidecarError("metadata sidecar field schema is not a list of columns (name, type)")


def _field(data: dict[str, Any], name: str, kind: type) -> Any:
    value = data.get(name)
    if type(value) is not kind:  # not isinstance: a JSON true is no row count
        raise SidecarError(f"metadata sidecar field {name} is {_shown(value)}, not {kind.__name__}")
    return value


def _shown(value: Any) -> str:
    """A value from untrusted input, short and quoted, for a quarantine reason."""
    if value is None:
        return "missing"
    return repr(value)[:40] if isinstance(value, str | int | float | bool) else type(value).__name__


@dataclass(frozen=True)
class EmergencyThresholds:
    """A reading needs attention outside these bounds (or when it is flagged an anomaly)."""

    temperature_high: float = 75.0
    temperature_low: float = 52.0
    pressure_high: float = 14.5
    pressure_low: float = 10.5
    voltage_high: float = 12.4
    voltage_low: float = 11.6
    humidity_high: float = 95.0
    humidity_low: float = 1.0


def schema_fingerprint(schema: pa.Schema) -> str:
    """Names and types of a data object's columns, hashed: equal schemas, equal fingerprints."""
    text = ";".join(f"{f.name}:{f.type}" for f in schema)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def landing_asset_key(scenario: str) -> str:
    """The Dagster asset an upload of `scenario` is reported as."""
    return f"landing/{validate_scenario(scenario)}"


_NODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_BUCKET_PREFIX = re.compile(r"^[a-z0-9][a-z0-9-]{0,29}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

DATA_ROOT = ""  # data keys start at the Hive partition directories
DATA_KEY_PREFIX = "year="  # every data object's key starts so (see `hour_partition_path`)
REJECTED_ROOT = "_rejected"


def validate_node_id(node_id: str) -> str:
    if not _NODE_ID.match(node_id) or ".." in node_id:
        raise ConfigError(
            f"node id {node_id!r} is not safe in an object key: use 1-63 letters, digits, "
            "'.', '_' or '-', starting with a letter or digit"
        )
    return node_id


def validate_bucket_prefix(prefix: str) -> str:
    if not _BUCKET_PREFIX.match(prefix) or "--" in prefix:
        raise ConfigError(
            f"bucket prefix {prefix!r} is not valid: use 1-30 lowercase letters, digits or "
            "single '-', starting with a letter or digit"
        )
    return prefix


def validate_region(region: str) -> str:
    if not _REGION.match(region):
        raise ConfigError(f"region {region!r} does not look like an AWS region (e.g. us-west-2)")
    return region


def validate_scenario(scenario: str) -> str:
    if scenario not in SCENARIOS:
        raise ConfigError(
            f"unknown pipeline type {scenario!r}: choose one of {', '.join(SCENARIOS)}"
        )
    return scenario


def landing_bucket_for(scenario: str, prefix: str, region: str) -> str:
    """`{prefix}-databricks-{scenario}-{region}`; the caller picks the region (see config)."""
    name = (
        f"{validate_bucket_prefix(prefix)}-databricks-{validate_scenario(scenario)}-"
        f"{validate_region(region)}"
    )
    if len(name) > 63 or not _BUCKET.match(name):
        raise ConfigError(f"bucket name {name!r} would be invalid (S3 allows 3-63 characters)")
    return name


def hour_partition_path(hour: datetime) -> str:
    """Hive-style event-time partition directories for one UTC hour."""
    return f"year={hour:%Y}/month={hour:%m}/day={hour:%d}/hour={hour:%H}"


def dagster_partition_key(hour: datetime) -> str:
    """The hourly partition key Dagster's HourlyPartitionsDefinition uses for that hour."""
    return f"{hour:%Y-%m-%d-%H}:00"


def partition_hour(partition_key: str) -> datetime:
    """'2026-11-23-09:00' -> that UTC hour (the inverse of `dagster_partition_key`)."""
    return datetime.strptime(partition_key, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)


def data_object_key(hour: datetime, node_id: str, batch_id: str) -> str:
    return f"{hour_partition_path(hour)}/{validate_node_id(node_id)}/{batch_id}.parquet"


def node_of_key(key: str) -> str | None:
    """The node id in a data object's or sidecar's key (see `data_object_key`)."""
    parts = key.split("/")
    return parts[4] if len(parts) == 6 else None


def rejected_object_key(node_id: str, batch_id: str) -> str:
    return f"{REJECTED_ROOT}/{validate_node_id(node_id)}/{batch_id}.parquet"


def sidecar_key(data_key: str) -> str:
    return data_key.removesuffix(".parquet") + ".json"
