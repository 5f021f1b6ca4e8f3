"""`landing/<scenario>`: external assets, materialized by edge agents' upload reports."""

from datetime import timedelta

import dagster as dg

from edge_agent.contract import SCENARIOS
from orchestration.environment import Environment

_DESCRIPTIONS = {
    "raw": "Sensor rows as the nodes recorded them, Parquet per event hour.",
    "schematized": "Typed, validated sensor rows; invalid rows kept apart under _rejected/.",
    "filtered": "Rows after business rules (coordinates rounded, out-of-range rows removed).",
    "emergency": "Only readings that need attention (anomalies and threshold breaches).",
    "regional": "Raw rows in the bucket of each node's own region.",
}


def landing_assets(env: Environment) -> list[dg.AssetSpec]:
    """What the edge agents report: materialized by their upload reports, not by Dagster."""
    # Drawn as fed by the demo's simulated fleet where one is; real nodes report the same way.
    fleet = [dg.AssetKey(["demo", "edge_fleet"])] if env.settings.simulated_fleet else []
    return [_landing_asset(scenario, env, fleet) for scenario in SCENARIOS]


def _landing_asset(scenario: str, env: Environment, deps: list[dg.AssetKey]) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=["landing", scenario],
        description=_DESCRIPTIONS[scenario],
        group_name="landing",
        kinds={"s3", "parquet"},
        partitions_def=env.hourly,
        deps=deps,
        owners=["team:data-platform"],
        metadata={"bucket_pattern": f"{{prefix}}-databricks-{scenario}-{{region}}"},
        # A scenario whose nodes stop delivering turns this asset stale (warn 1 h, fail 2 h).
        freshness_policy=dg.FreshnessPolicy.time_window(
            fail_window=timedelta(hours=2), warn_window=timedelta(hours=1)
        ),
    )
