"""The Lakebase workload config, in the shape of the Databricks Lakebase accelerator's YAML."""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from pathlib import Path

import dagster as dg
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from orchestration.settings import ConfigurationError, validation_message

DEFAULT_WORKLOAD = Path(__file__).with_name("workload.yaml")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")  # room for suffixes in 63
_ORDERED_COLUMN = re.compile(
    r"^[a-z_][a-z0-9_]{0,39}( (asc|desc))?( nulls (first|last))?$", re.IGNORECASE
)
_LAYERS = ("bronze", "silver", "gold")


class SyncPolicy(StrEnum):
    SNAPSHOT = "SNAPSHOT"
    TRIGGERED = "TRIGGERED"
    CONTINUOUS = "CONTINUOUS"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseInstance(_Strict):
    bulk_writes_per_second: float = 0
    continuous_writes_per_second: float = 0
    reads_per_second: float = 0
    number_of_readable_secondaries: int = Field(0, ge=0)
    readable_secondary_size_cu: int = Field(1, ge=1)
    promotion_percentage: float = Field(0, ge=0, le=100)


class DatabaseStorage(_Strict):
    data_stored_gb: float = Field(0, ge=0)
    estimated_data_deleted_daily_gb: float = Field(0, ge=0)
    restore_windows_days: int = Field(0, ge=0)


class TableIndex(_Strict):
    """A Postgres index the sync builds on a synced table, for the applications' filters.

    `include` columns are stored in the index too, so a query that needs only them is answered
    from the index alone (an index-only scan)."""

    columns: list[str] = Field(min_length=1)  # `name`, optionally `DESC` / `NULLS FIRST`
    include: list[str] = Field(default_factory=list)

    @field_validator("columns")
    @classmethod
    def _ordered_columns(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _ORDERED_COLUMN.match(value):
                raise ValueError(
                    f"{value!r} is not a column with an optional ASC/DESC and NULLS FIRST/LAST"
                )
        return values

    @field_validator("include")
    @classmethod
    def _identifiers(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _IDENTIFIER.match(value):
                raise ValueError(f"{value!r} is not a lower-case SQL identifier")
        return values

    def ordered_columns(self) -> list[tuple[str, str]]:
        """(column, its order: '', 'DESC', 'NULLS FIRST', ...) for each indexed column."""
        return [(value.split()[0], " ".join(value.split()[1:]).upper()) for value in self.columns]

    def name_for(self, table: str) -> str:
        """A stable name, unique per table and definition, within Postgres' 63 characters."""
        signature = ",".join(self.columns) + "|" + ",".join(self.include)
        return f"{table}_{hashlib.sha256(signature.encode()).hexdigest()[:8]}_idx"


class TableToSync(_Strict):
    """A lakehouse table kept in Postgres: `name` is `{layer}_{entity}` in the environment's
    catalog and schema (e.g. gold_sensor_hourly_stats); it is also the Postgres table name."""

    name: str
    primary_keys: list[str] = Field(min_length=1)
    scheduling_policy: SyncPolicy = SyncPolicy.TRIGGERED
    timeseries_key: str | None = None
    indexes: list[TableIndex] = Field(default_factory=list)  # for the dashboards' filters

    @field_validator("name", "timeseries_key")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        if value is not None and not _IDENTIFIER.match(value):
            raise ValueError(f"{value!r} is not a lower-case SQL identifier")
        return value

    @field_validator("name")
    @classmethod
    def _layered(cls, value: str) -> str:
        if value.split("_", 1)[0] not in _LAYERS or "_" not in value:
            raise ValueError(f"{value!r} must be {{layer}}_{{entity}}, layer one of {_LAYERS}")
        return value

    @property
    def source_asset_key(self) -> dg.AssetKey:
        layer, entity = self.name.split("_", 1)
        return dg.AssetKey([layer, entity])

    @property
    def asset_key(self) -> dg.AssetKey:
        return dg.AssetKey(["lakebase", self.name])


class DeltaSynchronization(_Strict):
    number_of_continuous_pipelines: int | None = Field(None, ge=0)  # counted from tables if unset
    expected_data_per_sync_gb: float = Field(0, ge=0)
    sync_mode: SyncPolicy = SyncPolicy.TRIGGERED
    sync_frequency: str = "Per hour"
    tables_to_sync: list[TableToSync] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> DeltaSynchronization:
        names = [t.name for t in self.tables_to_sync]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"tables_to_sync names must be unique: {', '.join(duplicates)}")
        return self

    def continuous_pipelines(self) -> int:
        if self.number_of_continuous_pipelines is not None:
            return self.number_of_continuous_pipelines
        return sum(t.scheduling_policy is SyncPolicy.CONTINUOUS for t in self.tables_to_sync)


class Workload(_Strict):
    database_instance: DatabaseInstance = DatabaseInstance()
    database_storage: DatabaseStorage = DatabaseStorage()
    delta_synchronization: DeltaSynchronization = DeltaSynchronization()


class WorkloadError(ConfigurationError):
    pass


def load_workload(path: Path | str = DEFAULT_WORKLOAD) -> Workload:
    """Read and validate a workload file; one line names the file, the field and the problem."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise WorkloadError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    try:
        return Workload.model_validate(data)
    except ValidationError as exc:
        raise WorkloadError(validation_message(path, exc)) from None


def synced_asset_keys() -> list[dg.AssetKey]:
    """The `lakebase/<table>` asset keys of the default workload (what reports depend on)."""
    return [t.asset_key for t in load_workload().delta_synchronization.tables_to_sync]
