"""`databricks/unity_catalog`: catalog, schema, external locations and grants, applied
idempotently (Databricks environments only)."""

import dagster as dg

from orchestration.databricks.unity import apply_unity, unity_objects
from orchestration.databricks.workspace import Databricks
from orchestration.environment import Environment
from orchestration.resources import LandingZone

UNITY_KEY = dg.AssetKey(["databricks", "unity_catalog"])


def unity_catalog_asset(env: Environment) -> dg.AssetsDefinition:
    @dg.asset(
        key=UNITY_KEY,
        group_name="databricks",
        kinds={"databricks", "unity_catalog"},
        description="Catalog, schema, landing external locations and grants, applied "
        "idempotently. Materialize it once per environment and after changing regions or "
        "principals (a deploy step can run `dagster asset materialize --select "
        "databricks/unity_catalog`).",
    )
    def unity_catalog(databricks: Databricks, landing: LandingZone) -> dg.MaterializeResult:
        buckets = [b for group in landing.buckets().values() for b in group]
        applied = apply_unity(databricks.client(), unity_objects(env.settings, buckets))
        return dg.MaterializeResult(
            metadata={
                "created": ", ".join(applied["created"]) or "none",
                "already_present": len(applied["existing"]),
                "privileges_granted": dg.MetadataValue.md(
                    "\n".join(f"- {g}" for g in applied["granted"]) or "none (all held)"
                ),
                "external_locations": len(buckets),
            }
        )

    return unity_catalog
