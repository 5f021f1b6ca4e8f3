"""Bucket names and object keys; every piece that comes from users is validated first."""

from __future__ import annotations

import re
from datetime import datetime

from edge_agent.errors import ConfigError

SCENARIOS = ("raw", "schematized", "filtered", "emergency", "regional")

_NODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_BUCKET_PREFIX = re.compile(r"^[a-z0-9][a-z0-9-]{0,29}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

DATA_ROOT = ""  # data keys start at the Hive partition directories
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


def data_object_key(hour: datetime, node_id: str, batch_id: str) -> str:
    return f"{hour_partition_path(hour)}/{validate_node_id(node_id)}/{batch_id}.parquet"


def rejected_object_key(node_id: str, batch_id: str) -> str:
    return f"{REJECTED_ROOT}/{validate_node_id(node_id)}/{batch_id}.parquet"


def sidecar_key(data_key: str) -> str:
    return data_key.removesuffix(".parquet") + ".json"
