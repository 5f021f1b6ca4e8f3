"""`landing/<scenario>`: external assets, materialized by edge agents' upload reports."""

import dagster as dg

from edge_agent.naming import SCENARIOS
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
        metadata={"bucket_pattern": f"{{prefix}}-databricks-{scenario}-{{region}}"},
    )
    for scenario in SCENARIOS
]
