"""Agent configuration: command line > environment > YAML file > defaults."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from edge_agent.contract import (
    EmergencyThresholds,
    validate_bucket_prefix,
    validate_node_id,
    validate_region,
)
from edge_agent.errors import ConfigError
from edge_agent.scenarios import FilteredRules, ScenarioSettings
from edge_agent.secrets import Secret, split_userinfo


def _default_node_id() -> str:
    host = "".join(c if c.isalnum() or c in "._-" else "-" for c in socket.gethostname())
    return host.strip(".-_")[:63] or "node"


@dataclass(frozen=True)
class AgentConfig:
    db: Path | None = None
    node_id: str = field(default_factory=_default_node_id)
    bucket_prefix: str = "edge"
    region: str | None = None  # the node's region; detected when not set (see region.py)
    default_region: str = "us-east-1"
    lakehouse_region: str | None = None  # region of the scenario buckets; default_region if unset
    table: str | None = None
    timestamp_column: str | None = None
    # Rows per claim and claims in flight: 30k x 2 keeps a node's peak memory under 150 MB
    # (bench/edge_upload.py measures it on a 5 M-row backlog: 147 MB; 50k x 2: 167 MB).
    batch_rows: int = 30_000
    workers: int = 2
    interval_seconds: float = 60.0
    lease_seconds: float = 300.0
    s3_endpoint_url: str | None = None
    aws_access_key_id: Secret | None = None
    aws_secret_access_key: Secret | None = None
    dagster_url: str | None = None
    dagster_token: Secret | None = None
    report_timeout_seconds: float = 3.0
    # Tries a report Dagster refuses for good (HTTP 4xx but 408/429) gets before it is moved
    # out of the queue into the dead letters; transient failures never count.
    report_max_attempts: int = 5
    imds_endpoint: str = "http://169.254.169.254"
    imds_timeout_seconds: float = 1.0
    scenario: ScenarioSettings = field(default_factory=ScenarioSettings)

    @property
    def scenario_bucket_region(self) -> str:
        return self.lakehouse_region or self.default_region

    def validated(self) -> AgentConfig:
        if self.db is None:
            raise ConfigError("no database given: pass --db PATH or set EDGE_AGENT_DB")
        validate_node_id(self.node_id)
        validate_bucket_prefix(self.bucket_prefix)
        validate_region(self.default_region)
        if self.lakehouse_region:
            validate_region(self.lakehouse_region)
        if self.region:
            validate_region(self.region)
        if self.batch_rows < 1 or self.workers < 1:
            raise ConfigError("batch_rows and workers must be at least 1")
        if self.interval_seconds <= 0:
            raise ConfigError("interval must be positive")
        if self.report_max_attempts < 1:
            raise ConfigError("report_max_attempts must be at least 1")
        if self.report_timeout_seconds <= 0:
            raise ConfigError("report_timeout_seconds must be positive")
        for name in ("dagster_url", "s3_endpoint_url"):
            url = getattr(self, name)
            if url and not url.startswith(("http://", "https://")):
                raise ConfigError(f"{name} must start with http:// or https://")
        return self


def _bool(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def _url(text: str) -> str:
    split_userinfo(text)  # a password in the URL is known to the log filter before anything logs
    return text


# Each setting: environment variables that set it (first wins) and how to parse their text.
_PARSERS: dict[str, Callable[[str], Any]] = {
    "db": Path,
    "batch_rows": int,
    "workers": int,
    "interval_seconds": float,
    "lease_seconds": float,
    "report_timeout_seconds": float,
    "report_max_attempts": int,
    "dagster_url": _url,
    "s3_endpoint_url": _url,
    "imds_timeout_seconds": float,
    "aws_access_key_id": Secret,
    "aws_secret_access_key": Secret,
    "dagster_token": Secret,
}
_ENV: dict[str, tuple[str, ...]] = {
    "db": ("EDGE_AGENT_DB",),
    "node_id": ("EDGE_AGENT_NODE_ID",),
    "bucket_prefix": ("EDGE_AGENT_BUCKET_PREFIX",),
    "default_region": ("EDGE_AGENT_DEFAULT_REGION",),
    "lakehouse_region": ("EDGE_AGENT_LAKEHOUSE_REGION",),
    "table": ("EDGE_AGENT_TABLE",),
    "timestamp_column": ("EDGE_AGENT_TIMESTAMP_COLUMN",),
    "batch_rows": ("EDGE_AGENT_BATCH_ROWS",),
    "workers": ("EDGE_AGENT_WORKERS",),
    "interval_seconds": ("EDGE_AGENT_INTERVAL_SECONDS",),
    "s3_endpoint_url": ("EDGE_AGENT_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
    "dagster_url": ("EDGE_AGENT_DAGSTER_URL",),
    "report_max_attempts": ("EDGE_AGENT_REPORT_MAX_ATTEMPTS",),
    "dagster_token": ("EDGE_AGENT_DAGSTER_TOKEN", "DAGSTER_CLOUD_API_TOKEN"),
    "imds_endpoint": ("EDGE_AGENT_IMDS_ENDPOINT",),
}
_SCENARIO_SECTIONS: dict[str, type] = {"emergency": EmergencyThresholds, "filtered": FilteredRules}
_TOP_LEVEL = {f.name for f in fields(AgentConfig)} - {"scenario"}


def _from_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}".splitlines()[0]) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    unknown = set(data) - _TOP_LEVEL - set(_SCENARIO_SECTIONS) - {"future_tolerance_seconds"}
    if unknown:
        raise ConfigError(f"unknown setting(s) in {path}: {', '.join(sorted(unknown))}")
    return data


def _section_value(section: str, name: str, kind: Any, value: Any) -> Any:
    """One scenario rule, checked against its declared type (YAML gives any type)."""
    where = f"{section}.{name}" if section else name
    if kind == "tuple[str, ...]":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of column names, e.g. [{value}]")
        return tuple(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, not {value!r}")
        return value
    if kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number, not {value!r}")
        if kind == "int" and value != int(value):
            raise ConfigError(f"{where} must be a whole number, not {value!r}")
        return int(value) if kind == "int" else float(value)
    return value


def _scenario_settings(data: Mapping[str, Any]) -> ScenarioSettings:
    sections: dict[str, Any] = {}
    for name, cls in _SCENARIO_SECTIONS.items():
        values = data.get(name) or {}
        if not isinstance(values, Mapping):
            raise ConfigError(f"{name} must be a mapping of settings, not {values!r}")
        declared = {f.name: f.type for f in fields(cls)}
        unknown = set(values) - set(declared)
        if unknown:
            raise ConfigError(f"unknown {name} setting(s): {', '.join(sorted(unknown))}")
        sections[name] = cls(
            **{k: _section_value(name, k, declared[k], v) for k, v in values.items()}
        )
    tolerance = data.get("future_tolerance_seconds", ScenarioSettings.future_tolerance_seconds)
    tolerance = _section_value("", "future_tolerance_seconds", "float", tolerance)
    return ScenarioSettings(future_tolerance_seconds=tolerance, **sections)


def _typed(name: str, value: Any) -> Any:
    parser = _PARSERS.get(name)
    if value is None or parser is None:
        return value
    try:
        return parser(value) if not isinstance(value, Path | Secret) else value
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name} has an invalid value") from exc


def load_config(
    cli: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> AgentConfig:
    """Merge the sources; `cli` holds only the options the user actually gave."""
    env = os.environ if env is None else env
    file_path = config_file or (
        Path(env["EDGE_AGENT_CONFIG"]) if env.get("EDGE_AGENT_CONFIG") else None
    )
    file_values = _from_yaml(file_path) if file_path else {}
    merged: dict[str, Any] = {k: v for k, v in file_values.items() if k in _TOP_LEVEL}
    for name, variables in _ENV.items():
        for variable in variables:
            if env.get(variable):
                merged[name] = env[variable]
                break
    merged.update({k: v for k, v in cli.items() if v is not None and k in _TOP_LEVEL})
    config = AgentConfig(**{k: _typed(k, v) for k, v in merged.items()})
    return replace(config, scenario=_scenario_settings(file_values))
