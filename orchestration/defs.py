"""Assembles the one Definitions object `definitions.py` exposes, from one environment."""

from collections.abc import Mapping
from typing import Any

import dagster as dg

from orchestration.automation import lakehouse_automation_sensor
from orchestration.bronze.assets import bronze_assets
from orchestration.bronze.preview_job import landing_preview_job
from orchestration.bronze.sensors import landing_sensors
from orchestration.engine import LakehouseEngine, engine_fields
from orchestration.engines.duckdb_engine import DuckDBEngine
from orchestration.environment import Environment, resolve_environment
from orchestration.fleet.assets import edge_demo_job, edge_fleet, edge_fleet_sensor
from orchestration.gold.assets import gold_assets
from orchestration.lakebase.assets import synced_table_assets
from orchestration.lakebase.postgres import Lakebase
from orchestration.lakebase.sensors import continuous_sensors
from orchestration.landing.assets import landing_assets
from orchestration.maintenance.compaction import daily_compaction_job, daily_compaction_schedule
from orchestration.maintenance.dead_runs import dead_run_sensor
from orchestration.maintenance.executor import host_tagging_executor
from orchestration.reports.assets import report_assets, reports_daily_job, reports_daily_schedule
from orchestration.resources import LandingZone
from orchestration.schedules import lakehouse_hourly_job, lakehouse_schedules, regional_bronze_job
from orchestration.settings import ConfigurationError, configured_for
from orchestration.silver.assets import silver_asset
from orchestration.warehouse import Warehouse


def build_definitions(
    resources: Mapping[str, Any] | None = None, *, environment: str | None = None
) -> dg.Definitions:
    """The project's definitions for `environment` (LAKEHOUSE_ENV when None, read here once);
    `resources` replaces default resources by key (tests, demo)."""
    # Configuration errors fail here, when the definitions load (and `dg check defs` in CI),
    # not hours later in a run.
    env = resolve_environment(environment)
    return definitions_for(env, resources)


def definitions_for(env: Environment, resources: Mapping[str, Any] | None = None) -> dg.Definitions:
    settings = env.settings
    bound = {
        "landing": LandingZone.for_environment(settings),
        "warehouse": configured_for(Warehouse, {"environment": settings.name}),
        "lakebase": Lakebase(),
        "pipes_subprocess_client": dg.PipesSubprocessClient(),
        **_engine_resources(env),
        **(resources or {}),
    }
    if "engine" not in (resources or {}):
        bound["engine"] = _engine(env, bound)
    fleet = settings.simulated_fleet
    return dg.Definitions(
        assets=[
            *landing_assets(env),
            *([edge_fleet] if fleet else []),
            *bronze_assets(env),
            silver_asset(env),
            *gold_assets(env),
            *synced_table_assets(env),
            *_engine_assets(env),
            *report_assets,
        ],
        jobs=[
            *([edge_demo_job] if fleet else []),
            landing_preview_job,
            lakehouse_hourly_job,
            regional_bronze_job,
            daily_compaction_job,
            reports_daily_job,
        ],
        schedules=[
            *lakehouse_schedules(env),
            daily_compaction_schedule,
            reports_daily_schedule(env),
        ],
        sensors=[
            *landing_sensors(env),
            *continuous_sensors(),
            dead_run_sensor,
            lakehouse_automation_sensor(env.settings.automation_interval_seconds),
            *([edge_fleet_sensor(env)] if fleet else []),
        ],
        executor=host_tagging_executor,
        resources=bound,
    )


def _engine(env: Environment, bound: Mapping[str, Any]) -> LakehouseEngine:
    fields = engine_fields(env.settings)
    if env.engine == "databricks":
        from orchestration.databricks.engine import DatabricksEngine

        return configured_for(DatabricksEngine, fields)
    return configured_for(DuckDBEngine, fields)


def _engine_resources(env: Environment) -> dict[str, Any]:
    if env.engine != "databricks":
        return {}
    _need_databricks_group()
    from orchestration.databricks.workspace import databricks_resource

    return {"databricks": databricks_resource(env.settings)}


def _engine_assets(env: Environment) -> list[dg.AssetsDefinition]:
    """What only the engine has: Unity Catalog's objects and grants on Databricks."""
    if env.engine != "databricks":
        return []
    from orchestration.catalog.assets import unity_catalog_asset

    return [unity_catalog_asset(env)]


def _need_databricks_group() -> None:
    try:
        import dagster_databricks  # noqa: F401
        import databricks.sdk  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(
            f"engine: databricks needs the databricks dependency group ({exc.name} is missing): "
            "run `uv sync --group databricks`"
        ) from None
