"""Assembles the one Definitions object `definitions.py` exposes."""

from collections.abc import Mapping
from typing import Any

import dagster as dg

from orchestration.automation import lakehouse_automation_sensor
from orchestration.bronze.assets import bronze_assets
from orchestration.bronze.preview_job import landing_preview_job
from orchestration.bronze.sensors import landing_sensors
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
from orchestration.schedules import (
    lakehouse_hourly_job,
    lakehouse_hourly_schedule,
    regional_bronze_job,
    regional_bronze_schedule,
)
from orchestration.settings import ConfigurationError, environment_settings
from orchestration.silver.assets import silver_sensor_readings
from orchestration.warehouse import Warehouse


def build_definitions(resources: Mapping[str, Any] | None = None) -> dg.Definitions:
    """The project's definitions; `resources` replaces default resources by key (tests, demo)."""
    # Configuration errors fail here, when the definitions load (and `dagster definitions
    # validate` in CI), not hours later in a run.
    settings = environment_settings()
    engine: dict[str, Any]
    if settings.engine == "databricks":
        engine = _databricks_engine()
    else:
        engine = {
            "assets": [
                *bronze_assets,
                silver_sensor_readings,
                *gold_assets,
                *synced_table_assets(),
            ],
            "resources": {},
        }
    return dg.Definitions(
        assets=[
            *landing_assets,
            edge_fleet,
            *engine["assets"],
            *report_assets,
        ],
        jobs=[
            edge_demo_job,
            landing_preview_job,
            lakehouse_hourly_job,
            regional_bronze_job,
            daily_compaction_job,
            reports_daily_job,
        ],
        schedules=[
            lakehouse_hourly_schedule,
            regional_bronze_schedule,
            daily_compaction_schedule,
            reports_daily_schedule,
        ],
        sensors=[
            *landing_sensors,
            *continuous_sensors(),
            dead_run_sensor,
            lakehouse_automation_sensor,
            edge_fleet_sensor,
        ],
        executor=host_tagging_executor,
        resources={
            "landing": LandingZone(),
            "warehouse": Warehouse(),
            "lakebase": Lakebase(),
            "pipes_subprocess_client": dg.PipesSubprocessClient(),
            **engine["resources"],
            **(resources or {}),
        },
    )


def _databricks_engine() -> dict[str, Any]:
    """The same assets run as Databricks jobs; needs the `databricks` dependency group."""
    try:
        from orchestration.databricks import assets
        from orchestration.databricks.serving import serving_assets
        from orchestration.databricks.workspace import databricks_resource
    except ImportError as exc:
        raise ConfigurationError(
            f"engine: databricks needs the databricks dependency group ({exc.name} is missing): "
            "run `uv sync --group databricks`"
        ) from None
    return {
        "assets": [
            *assets.bronze_assets,
            assets.silver_sensor_readings,
            *assets.gold_assets,
            *serving_assets(),
        ],
        "resources": {"databricks": databricks_resource()},
    }
