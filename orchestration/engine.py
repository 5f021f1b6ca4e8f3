"""The engine interface: what each layer asks of the engine that holds its tables.

Every bronze, silver, gold and synced-table asset is defined once (orchestration/<layer>/assets.py)
and calls the `engine` resource: DuckDB on one machine (`engines/duckdb_engine.py`) or Databricks
through Pipes (`databricks/engine.py`). Dagster does the discovery and bookkeeping; the engine,
given the exact objects or hours, loads or builds and returns these typed figures, from which
the asset's metadata and checks are made the same way on both engines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import dagster as dg
from pydantic import Field

from orchestration.bronze.figures import BronzeLoad, BronzeRequest
from orchestration.lakebase.workload import TableToSync
from orchestration.settings import EnvironmentSettings, environment_settings, qualified_table_name
from orchestration.silver.figures import HourFigures, HourViolations
from orchestration.transforms.gold import GoldTable


@dataclass
class SilverBuild:
    """What a silver run found and wrote, per event hour."""

    violations: dict[str, HourViolations]  # per partition key: rows and each expectation's
    blocked: bool  # expect_or_fail violated: nothing was written
    hours: dict[str, HourFigures] = field(default_factory=dict)
    rows_in: int = 0
    shown: dict[str, Any] = field(default_factory=dict)  # the engine's view of the table


@dataclass
class GoldBuild:
    rows_by_hour: dict[str, int]
    shown: dict[str, Any] = field(default_factory=dict)


@dataclass
class FleetHealthBuild:
    rows: int
    nodes: int
    silent: int
    silent_sensors: list[tuple[str, str, datetime]]  # the first ones, oldest reading first
    shown: dict[str, Any] = field(default_factory=dict)


@dataclass
class ViewBuild:
    rows_by_region: dict[str, int] | None  # None: the engine does not count a view's rows
    shown: dict[str, Any] = field(default_factory=dict)


@dataclass
class SyncBuild:
    """A synced table after its sync: where it is, its rows, and what the sync did."""

    table: str
    rows: int | None
    message: str
    shown: dict[str, Any] = field(default_factory=dict)


class EngineError(dg.Failure):
    """A load or build the engine refused for a reason a retry cannot fix (one sentence)."""

    def __init__(self, message: str) -> None:
        super().__init__(description=message, allow_retries=False)


class LakehouseEngine(dg.ConfigurableResource):
    """Where the lakehouse's tables live and its SQL runs. Fields are the environment's, shown
    on the resource's page in the UI."""

    engine: str = Field(description="what runs the SQL and holds the tables")
    environment: str = Field(description="LAKEHOUSE_ENV this graph was built for")
    catalog: str = Field(description="catalog of the tables")
    schema_name: str = Field(description="schema of the tables")
    regions: list[str] = Field(description="regions with a regional landing bucket")

    def table_metadata(self, layer: str, entity: str) -> dict[str, str]:
        """The table's name, as every materialization of a table asset shows it."""
        name = self.table_name(layer, entity)
        return {"table": name, "dagster/table_name": name}

    def settings(self) -> EnvironmentSettings:
        return environment_settings(self.environment)

    def table_name(self, layer: str, entity: str) -> str:
        return qualified_table_name(self.catalog, self.schema_name, layer, entity)

    def discovers_objects(self) -> bool:
        """True when the engine finds landing objects itself (Auto Loader), so Dagster does not
        list them."""
        return False

    def load_bronze(self, context: dg.AssetExecutionContext, request: BronzeRequest) -> BronzeLoad:
        """Replace each target partition with the request's verified objects."""
        raise NotImplementedError

    def build_silver(
        self, context: dg.AssetExecutionContext, start: datetime, end: datetime
    ) -> SilverBuild:
        """Unify, deduplicate and check bronze's rows of [start, end); replace those hours
        unless an expect_or_fail expectation is violated."""
        raise NotImplementedError

    def build_hourly_gold(
        self, context: dg.AssetExecutionContext, spec: GoldTable, start: datetime, end: datetime
    ) -> GoldBuild:
        raise NotImplementedError

    def build_fleet_health(
        self, context: dg.AssetExecutionContext, silent_after_hours: int
    ) -> FleetHealthBuild:
        raise NotImplementedError

    def build_view(self, context: dg.AssetExecutionContext, entity: str, select: str) -> ViewBuild:
        raise NotImplementedError

    def sync_table(self, context: dg.AssetExecutionContext, spec: TableToSync) -> SyncBuild:
        """Bring the synced table in Postgres up to date with its source table."""
        raise NotImplementedError


def engine_fields(settings: EnvironmentSettings) -> dict[str, Any]:
    """The fields every engine resource carries, from the environment's settings."""
    return {
        "environment": settings.name,
        "catalog": settings.catalog,
        "schema_name": settings.schema,
        "regions": list(settings.regional_regions),
    }
