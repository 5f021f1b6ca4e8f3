"""The simulated fleet the demo job runs: which nodes, their pipeline type and region."""

from __future__ import annotations

import dagster as dg
from pydantic import Field


class EdgeNodeSpec(dg.Config):
    node_id: str
    pipeline_type: str
    region: str = "us-east-1"


def default_nodes() -> list[EdgeNodeSpec]:
    return [
        EdgeNodeSpec(node_id="factory-ams-1", pipeline_type="raw"),
        EdgeNodeSpec(node_id="factory-aus-1", pipeline_type="schematized"),
        EdgeNodeSpec(node_id="field-osa-1", pipeline_type="filtered"),
        EdgeNodeSpec(node_id="field-per-1", pipeline_type="emergency"),
        EdgeNodeSpec(node_id="plant-dub-1", pipeline_type="regional", region="eu-west-1"),
    ]


class FleetConfig(dg.Config):
    """Each run appends `rows_per_node` fresh readings per node, then runs its agent once."""

    rows_per_node: int = 5_000
    sensors_per_node: int = 4
    invalid_fraction: float = Field(default=0.01, description="rows that break a schema rule")
    late_fraction: float = Field(default=0.02, description="rows with timestamps hours old")
    nodes: list[EdgeNodeSpec] = Field(default_factory=default_nodes)
