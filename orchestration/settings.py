"""Environment settings (dev / staging / prod) from one variable, LAKEHOUSE_ENV."""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar

import dagster as dg
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from orchestration.bronze.admission import LandingLimits

ENVIRONMENT_VARIABLE = "LAKEHOUSE_ENV"
ENVIRONMENTS_FILE = Path(__file__).with_name("environments.yaml")


class ConfigurationError(dg.Failure):
    """Invalid configuration: one sentence, and never retried (a retry cannot fix it)."""

    def __init__(self, message: str) -> None:
        super().__init__(description=message, allow_retries=False)
        self.message = message

    def __str__(self) -> str:
        return self.message


R = TypeVar("R", bound=dg.ConfigurableResource)


def configured_for(resource: type[R], values: dict[str, Any], **fields: Any) -> R:
    """`resource` with an environment's `values` as its class defaults. Dagster builds a
    resource from its class defaults plus the run config's fields, so run config that sets one
    field (a bucket prefix, a lock timeout) keeps the environment's catalog, regions and file
    instead of silently falling back to another environment's."""
    defaults: dict[str, Any] = {
        name: (
            resource.model_fields[name].annotation,
            Field(default=value, description=resource.model_fields[name].description),
        )
        for name, value in values.items()
    }
    bound = create_model(  # type: ignore[call-overload]
        resource.__name__, __base__=resource, __module__=resource.__module__, **defaults
    )
    return bound(**fields)


def validation_message(source: Path | str, exc: ValidationError, within: str = "") -> str:
    """A pydantic error as one line: the file, then each field's path and what is wrong."""
    errors = exc.errors()

    def one(error: Any) -> str:
        where = ".".join([within, *map(str, error["loc"])] if within else map(str, error["loc"]))
        where = where or "(top level)"
        got = "" if error["type"] == "missing" else f", got {error['input']!r}"
        return f"{where}: {error['msg']}{got}"

    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return f"{source}: " + "; ".join(one(e) for e in errors[:3]) + more


_REGION = r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$"


class ExpectationThresholds(BaseModel):
    """When a passing-by-design expectation still fails its check (DLT semantics: `expect` and
    `expect_or_drop` never stop the update; their checks turn WARN past these shares of rows)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    expect_warn_rate: float = Field(default=0.05, ge=0, le=1)
    drop_fail_rate: float = Field(default=0.10, ge=0, le=1)


class DatabricksCompute(BaseModel):
    """Where the Databricks job runs: serverless (the default) or a classic job cluster."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["serverless", "cluster"] = "serverless"
    # Serverless: the job's Python environment (client version and pip requirements), pinned to
    # uv.lock's versions so every run installs what the tests ran.
    environment_version: str = "2"
    dependencies: tuple[str, ...] = ("dagster-pipes==1.13.27", "boto3==1.43.117")
    # Classic clusters: a `new_cluster` spec as in the Jobs API (spark_version, node_type_id...).
    new_cluster: dict[str, Any] | None = None
    dbu_per_hour: float = Field(default=4.0, gt=0)  # what one job run burns per hour

    @field_validator("new_cluster")
    @classmethod
    def _cluster(cls, spec: dict[str, Any] | None) -> dict[str, Any] | None:
        if spec is not None and "spark_version" not in spec:
            raise ValueError("a new_cluster spec needs at least spark_version")
        return spec


class DatabricksWorkspace(BaseModel):
    """The workspace an engine: databricks environment drives (credentials come from env vars)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host_env: str = "DATABRICKS_HOST"
    token_env: str = "DATABRICKS_TOKEN"  # noqa: S105 (the variable's name, not a token)
    # A Unity Catalog Volume for Pipes messages and the job's code: /Volumes/<cat>/<schema>/<v>
    volume: str = Field(pattern=r"^/Volumes/[^/]+/[^/]+/[^/]+$")
    compute: DatabricksCompute = DatabricksCompute()
    usd_per_dbu: float = Field(default=0.55, gt=0)  # for the cost report's compute line
    # Who discovers landing objects for bronze: Dagster (the exactly-once digests, sidecar
    # checks, quarantine; the default) or Auto Loader (cloudFiles, availableNow, its own
    # checkpoint; see docs/databricks.md for what that trades away).
    bronze_discovery: Literal["dagster", "autoloader"] = "dagster"
    timeout_seconds: int = Field(default=3600, gt=0)  # per job run
    poll_interval_seconds: float = Field(default=5, gt=0)
    # Unity Catalog: the storage credential behind the landing buckets' external locations.
    storage_credential: str = "edge_landing"
    readers_group: str = "lakehouse_readers"  # granted SELECT on the environment's schema
    app_role: str = "lakehouse_app"  # the Lakebase application's principal


class EnvironmentSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    engine: Literal["duckdb", "databricks"] = "duckdb"
    databricks: DatabricksWorkspace | None = None
    catalog: str = Field(pattern=r"^[a-z_][a-z0-9_]*$")
    schema_: str = Field(alias="schema", pattern=r"^[a-z_][a-z0-9_]*$")
    lakehouse_region: str = Field(default="us-east-1", pattern=_REGION)
    regional_regions: tuple[str, ...] = Field(default=("us-east-1", "eu-west-1"), min_length=1)
    max_files_per_run: int = Field(gt=0)
    target_file_size_mb: int = Field(gt=0)
    sensor_lookback_hours: int = Field(ge=0)
    full_scan_interval_hours: float = Field(gt=0)
    max_keys_per_tick: int = Field(gt=0)
    silent_after_hours: int = Field(gt=0)
    incomplete_grace_minutes: float = Field(default=30, ge=0)
    # Caps on one landing object (sidecar bytes, object bytes, columns, column name length):
    # past one, the object is quarantined with the reason and the rest of its hour loads.
    landing_limits: LandingLimits = LandingLimits()
    expectations: ExpectationThresholds = ExpectationThresholds()
    # The live local platform (`lakehouse-live`): landing sensors, schedules and the simulated
    # fleet start RUNNING, because that command starts the S3 endpoint and PostgreSQL they need.
    local_platform: bool = False
    fleet_interval_seconds: int = Field(default=60, ge=10)
    # How often the landing sensors look for uploads and automation evaluates the graph: the
    # delay between an upload and bronze, and between a layer and the next.
    landing_sensor_interval_seconds: int = Field(default=60, ge=5)
    automation_interval_seconds: int = Field(default=30, ge=5)
    # First hourly partition: near the data, so the UI's fill rates and "missing" backfill
    # presets mean something (older hours cannot be loaded; move it back to load history).
    # Unset (local environments): `history_days` before this installation first built its
    # definitions, recorded in DAGSTER_HOME.
    partitions_start: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}-\d{2}:00$")
    history_days: int = Field(default=14, ge=0)  # room for a node offline two weeks
    # The simulated fleet (its asset, job and sensor) exists only where one is simulated.
    simulated_fleet: bool = False

    @field_validator("regional_regions")
    @classmethod
    def _regions(cls, regions: tuple[str, ...]) -> tuple[str, ...]:
        for region in regions:
            if not re.match(_REGION, region):
                raise ValueError(f"{region!r} does not look like an AWS region (e.g. us-west-2)")
        if len(set(regions)) != len(regions):
            raise ValueError("regions repeat")
        return regions

    @model_validator(mode="after")
    def _engine(self) -> EnvironmentSettings:
        if self.engine == "databricks" and self.databricks is None:
            raise ValueError("engine: databricks needs a databricks: block (at least volume)")
        return self

    @property
    def schema(self) -> str:  # type: ignore[override]
        return self.schema_

    def default_status(self) -> Any:
        """RUNNING for what needs S3 and Postgres where the platform provides them, else
        STOPPED (a fresh machine runs neither)."""
        return (
            dg.DefaultSensorStatus.RUNNING
            if self.local_platform
            else dg.DefaultSensorStatus.STOPPED
        )

    def schedule_status(self) -> Any:
        return (
            dg.DefaultScheduleStatus.RUNNING
            if self.local_platform
            else dg.DefaultScheduleStatus.STOPPED
        )

    def table_name(self, layer: str, entity: str) -> str:
        """`{catalog}.{schema}.{layer}_{entity}`, unquoted (for display and metadata)."""
        return qualified_table_name(self.catalog, self.schema, layer, entity)


def qualified_table_name(catalog: str, schema: str, layer: str, entity: str) -> str:
    """The one form of a lakehouse table's full name, unquoted (for display and metadata)."""
    return f"{catalog}.{schema}.{layer}_{entity}"


@cache
def load_environments(path: Path = ENVIRONMENTS_FILE) -> dict[str, EnvironmentSettings]:
    """Every environment in the file, validated; a bad file fails in one line naming the field."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"{path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or not data:
        raise ConfigurationError(f"{path}: must map environment names to their settings")
    environments = {}
    for name, values in data.items():
        if not isinstance(values, dict):
            raise ConfigurationError(f"{path}: {name}: must be a mapping of settings")
        try:
            environments[name] = EnvironmentSettings(name=name, **values)
        except ValidationError as exc:
            raise ConfigurationError(validation_message(path, exc, within=name)) from None
    return environments


def environment_settings(name: str | None = None) -> EnvironmentSettings:
    """Settings for `name`, or for LAKEHOUSE_ENV (default dev); read when called, not imported."""
    chosen = name or os.environ.get(ENVIRONMENT_VARIABLE) or "dev"
    environments = load_environments()
    if chosen not in environments:
        named = f"environment {chosen!r}" if name else f"{ENVIRONMENT_VARIABLE}={chosen!r}"
        raise ConfigurationError(
            f"{named} is not one of {', '.join(environments)} (defined in {ENVIRONMENTS_FILE.name})"
        )
    return environments[chosen]
