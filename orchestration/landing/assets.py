"""`landing/<scenario>`: external assets, materialized by edge agents' upload reports."""

from datetime import timedelta

import dagster as dg

from edge_agent.contract import SCENARIOS
from orchestration.partitions import hourly_partitions

_DESCRIPTIONS = {
    "raw": "Sensor rows as the nodes recorded them, Parquet per event hour.",
    "schematized": "Typed, validated sensor rows; invalid rows kept apart under _rejected/.",
    "filtered": "Rows after business rules (coordinates rounded, out-of-range rows removed).",
    "emergency": "Only readings that need attention (anomalies and threshold breaches).",
    "regional": "Raw rows in the bucket of each node's own region.",
}

landing_assets = [
    dg.AssetSpec(
        key=["landing", scenario],
        description=_DESCRIPTIONS[scenario],
        group_name="landing",
        kinds={"s3", "parquet"},
        partitions_def=hourly_partitions,
        # Drawn as fed by the demo's simulated fleet; real nodes report through the same asset.
        deps=[dg.AssetKey(["demo", "edge_fleet"])],
        owners=["team:data-platform"],
        metadata={"bucket_pattern": f"{{prefix}}-databricks-{scenario}-{{region}}"},
        # A scenario whose nodes stop delivering turns this asset stale (warn 1 h, fail 2 h).
        freshness_policy=dg.FreshnessPolicy.time_window(
            fail_window=timedelta(hours=2), warn_window=timedelta(hours=1)
        ),
    )
    for scenario in SCENARIOS
]
