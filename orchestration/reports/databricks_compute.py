"""Databricks compute in the pipeline cost: job run durations (recorded on each
materialization) times the environment's DBU rate and price."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import dagster as dg

from orchestration.settings import DatabricksWorkspace


def databricks_compute(
    instance: dg.DagsterInstance,
    asset_keys: list[dg.AssetKey],
    workspace: DatabricksWorkspace,
    limit: int = 1000,
) -> dict[str, Any]:
    """Seconds, DBUs and USD of the latest Databricks job runs, by asset. A range run records
    its run on every partition it wrote; each job run is counted once."""
    seconds: dict[str, float] = defaultdict(float)
    seen: set[str] = set()
    for key in asset_keys:
        records = instance.fetch_materializations(key, limit=limit).records
        for record in records:
            materialization = record.asset_materialization
            metadata = materialization.metadata if materialization else {}
            run_id = metadata.get("databricks_run_id")
            duration = metadata.get("databricks_run_seconds")
            if run_id is None or duration is None or run_id.value in seen:
                continue
            seen.add(run_id.value)
            seconds[key.to_user_string()] += float(duration.value)
    total = sum(seconds.values())
    dbu = total / 3600 * workspace.compute.dbu_per_hour
    return {
        "job_runs": len(seen),
        "seconds": round(total, 1),
        "dbu": round(dbu, 4),
        "usd": round(dbu * workspace.usd_per_dbu, 4),
        "dbu_per_hour": workspace.compute.dbu_per_hour,
        "usd_per_dbu": workspace.usd_per_dbu,
        "seconds_by_asset": dict(sorted(seconds.items(), key=lambda kv: -kv[1])),
    }
