"""One environment, resolved once where the definitions are built: its settings, partitions,
engine and table names. Every asset, sensor, schedule and resource is built from it, so one
process can hold two environments' definitions without either leaking into the other."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg

from orchestration.home import dagster_home, make_private
from orchestration.settings import EnvironmentSettings, environment_settings

INSTALLATION_FILE = "lakehouse_installation.json"
PARTITION_FORMAT = "%Y-%m-%d-%H:00"
ENGINE_KINDS = {
    "duckdb": frozenset({"duckdb"}),
    "databricks": frozenset({"databricks", "pyspark", "delta"}),
}
ENGINE_LABELS = {"duckdb": "DuckDB", "databricks": "Delta on Databricks"}


@dataclass(frozen=True)
class Environment:
    """What the graph of one environment is built from."""

    settings: EnvironmentSettings
    hourly: dg.HourlyPartitionsDefinition
    regional: dg.MultiPartitionsDefinition

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def regions(self) -> tuple[str, ...]:
        return self.settings.regional_regions

    @property
    def engine(self) -> str:
        return self.settings.engine

    @property
    def kinds(self) -> set[str]:
        """The UI's kind tags of a table asset on this environment's engine."""
        return set(ENGINE_KINDS[self.engine])

    @property
    def engine_label(self) -> str:
        return ENGINE_LABELS[self.engine]

    def table_name(self, layer: str, entity: str) -> str:
        return self.settings.table_name(layer, entity)

    def table_metadata(self, layer: str, entity: str) -> dict[str, Any]:
        """Definition metadata of a table asset: the UI names its table before the first run."""
        return {"dagster/table_name": self.table_name(layer, entity)}


def build_environment(
    settings: EnvironmentSettings, partitions_start: str | None = None
) -> Environment:
    """The environment's partitions start at `partitions_start`, else at the settings' (a fixed
    date for shared environments), else where this installation's data starts."""
    start = partitions_start or settings.partitions_start or installation_start(settings)
    hourly = dg.HourlyPartitionsDefinition(start_date=start, end_offset=1)
    regions = dg.StaticPartitionsDefinition(list(settings.regional_regions))
    regional = dg.MultiPartitionsDefinition({"hour": hourly, "region": regions})
    return Environment(settings, hourly, regional)


def resolve_environment(name: str | None = None) -> Environment:
    """The environment LAKEHOUSE_ENV names (dev when unset), or `name`: read here, once."""
    return build_environment(environment_settings(name))


def installation_start(settings: EnvironmentSettings, home: Path | None = None) -> str:
    """The first partition of a local installation: `history_days` before the day its
    DAGSTER_HOME first built these definitions, recorded there so it never moves (a fixed date
    would age: a new user would see thousands of Missing hours and more every day)."""
    path = (home or dagster_home()) / INSTALLATION_FILE
    try:
        recorded = json.loads(path.read_text())
        return _partition_key(recorded["first_partition"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = (today - timedelta(days=settings.history_days)).strftime(PARTITION_FORMAT)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"first_partition": start, "recorded_at": today.isoformat()}))
    make_private(tmp)
    tmp.replace(path)
    return start


def _partition_key(text: object) -> str:
    if not isinstance(text, str):
        raise TypeError("first_partition must be text")
    return datetime.strptime(text, PARTITION_FORMAT).strftime(PARTITION_FORMAT)
