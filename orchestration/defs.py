"""Assembles the one Definitions object `definitions.py` exposes."""

import dagster as dg

from orchestration.bronze.assets import bronze_assets
from orchestration.bronze.sensors import landing_sensors
from orchestration.fleet.assets import edge_demo_job, edge_fleet
from orchestration.landing.assets import landing_assets
from orchestration.resources import LandingZone
from orchestration.warehouse import Warehouse


def build_definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[*landing_assets, edge_fleet, *bronze_assets],
        jobs=[edge_demo_job],
        sensors=landing_sensors,
        resources={
            "landing": LandingZone(),
            "warehouse": Warehouse(),
            "pipes_subprocess_client": dg.PipesSubprocessClient(),
        },
    )
