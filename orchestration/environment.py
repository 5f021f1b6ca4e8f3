"""One environment, resolved once where the definitions are built: its settings, partitions,
engine and table names. Every asset, sensor, schedule and resource is built from it, so one
process can hold two environments' definitions without either leaking into the other."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg

from orchestration.home import dagster_home
from orchestration.settings import ConfigurationError, EnvironmentSettings, environment_settings

INSTALLATION_FILE = "lakehouse_installation.json"
PARTITION_FORMAT = "%Y-%m-%d-%H:00"
ENGINE_KINDS = {
    "duckdb": frozenset({"duckdb"}),
    "databricks": frozenset({"databricks", "pyspark", "delta"}),
}
ENGINE_LABELS = {"duckdb": "DuckDB", "databricks": "Delta on Databricks"}
# Where a synced table's rows are served: the local PostgreSQL, or Lakebase's on Databricks.
SERVING_KINDS = {
    "duckdb": frozenset({"postgres"}),
    "databricks": frozenset({"databricks", "lakebase", "postgres"}),
}
# The resources each engine works through, required by every asset that calls the engine (so
# run config for them reaches the engine): the DuckDB file and the local PostgreSQL, or the
# Databricks workspace.
ENGINE_RESOURCE_KEYS = {
    "duckdb": frozenset({"warehouse", "lakebase"}),
    "databricks": frozenset({"databricks"}),
}


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
    def serving_kinds(self) -> set[str]:
        """The UI's kind tags of a synced (served) table on this environment's engine."""
        return set(SERVING_KINDS[self.engine])

    def resource_keys(self, *keys: str) -> set[str]:
        """`keys`, the `engine` and the resources the engine works through: what an asset that
        calls the engine requires."""
        return {*keys, "engine", *ENGINE_RESOURCE_KEYS[self.engine]}

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


# Before installations recorded their start, local environments started here: an existing
# DAGSTER_HOME keeps it, so no partition it has materialized falls out of range on upgrade.
EARLIER_START = "2026-10-01-00:00"


def installation_start(settings: EnvironmentSettings, home: Path | None = None) -> str:
    """The first partition of a local installation: `history_days` before the day its
    DAGSTER_HOME first built these definitions, recorded there so it never moves (a fixed date
    would age: a new user would see thousands of Missing hours and more every day)."""
    home = home or dagster_home()
    path = home / INSTALLATION_FILE
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    existing = (home / "storage").exists() or any(home.glob("warehouse_*.duckdb"))
    start = EARLIER_START if existing else today - timedelta(days=settings.history_days)
    record = {"first_partition": _key(start), "recorded_at": today.isoformat()}
    if not path.exists():  # the first process to link it records it; others read that one
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{id(record)}")
        try:
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
                f.write(json.dumps(record))
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)  # whole or not at all, never replacing another's record
        except OSError as exc:
            why = exc.strerror or str(exc)
            raise ConfigurationError(f"{path}: cannot record the first partition ({why})") from None
        finally:
            tmp.unlink(missing_ok=True)
    return _recorded(path, today)


def _recorded(path: Path, today: datetime) -> str:
    try:
        text = json.loads(path.read_text())["first_partition"]
        start = datetime.strptime(text, PARTITION_FORMAT).replace(tzinfo=UTC)
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigurationError(
            f"{path}: first_partition must be an hour like {_key(today)}; fix or delete the file"
        ) from None
    if start > today + timedelta(days=1):
        raise ConfigurationError(f"{path}: first_partition {text} is in the future")
    return _key(start)


def _key(moment: datetime | str) -> str:
    return moment if isinstance(moment, str) else moment.strftime(PARTITION_FORMAT)
