"""Assembles the one Definitions object `definitions.py` exposes."""

import dagster as dg

from orchestration.fleet.assets import edge_demo_job, edge_fleet
from orchestration.landing.assets import landing_assets
from orchestration.resources import LandingZone


def build_definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[*landing_assets, edge_fleet],
        jobs=[edge_demo_job],
        resources={
            "landing": LandingZone(),
            "pipes_subprocess_client": dg.PipesSubprocessClient(),
        },
    )
