"""Serving on Databricks: `lakebase/<table>` as Lakebase synced tables through the API, and the
Unity Catalog objects the environment needs (`databricks/unity_catalog`)."""

import dagster as dg

from orchestration.databricks.lakebase_api import (
    LakebaseSyncError,
    ensure_lakebase,
    postgres_rows,
    sync_and_wait,
)
from orchestration.databricks.unity import apply_unity, unity_objects
from orchestration.databricks.workspace import Databricks
from orchestration.lakebase.assets import synced_table_args
from orchestration.lakebase.bundle import bundle_resources
from orchestration.lakebase.workload import TableToSync, load_workload
from orchestration.resources import LandingZone
from orchestration.settings import environment_settings

UNITY_KEY = dg.AssetKey(["databricks", "unity_catalog"])


def build_synced_table(spec: TableToSync) -> dg.AssetsDefinition:
    @dg.asset(**synced_table_args(spec), kinds={"databricks", "lakebase", "postgres"})
    def synced(context: dg.AssetExecutionContext, databricks: Databricks) -> dg.MaterializeResult:
        settings = environment_settings()
        resources = bundle_resources(load_workload(), settings)["resources"]
        client = databricks.client()
        table = resources["synced_database_tables"][spec.name]
        try:
            _, ensured = ensure_lakebase(client, resources, spec.name)
            state = sync_and_wait(client, table["name"], databricks.settings().timeout_seconds)
        except LakebaseSyncError as exc:
            raise dg.Failure(description=str(exc)) from exc
        rows = postgres_rows(
            client,
            table["database_instance_name"],
            table["logical_database_name"],
            table["name"],
        )
        if ensured.created:
            context.log.info(f"created {', '.join(ensured.created)}")
        return dg.MaterializeResult(
            metadata={
                "synced_table": table["name"],
                "source_table": table["spec"]["source_table_full_name"],
                "state": state,
                "dagster/row_count": rows,
                "scheduling_policy": spec.scheduling_policy.value,
                "created": ", ".join(ensured.created) or "none (all existed)",
            }
        )

    return synced


@dg.asset(
    key=UNITY_KEY,
    group_name="databricks",
    kinds={"databricks", "unity_catalog"},
    description="Catalog, schema, landing external locations and grants, applied idempotently. "
    "Materialize it once per environment and after changing regions or principals (a deploy "
    "step can run `dagster asset materialize --select databricks/unity_catalog`).",
)
def unity_catalog(databricks: Databricks, landing: LandingZone) -> dg.MaterializeResult:
    settings = environment_settings()
    buckets = [b for group in landing.buckets().values() for b in group]
    applied = apply_unity(databricks.client(), unity_objects(settings, buckets))
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


def serving_assets() -> list[dg.AssetsDefinition]:
    return [
        *(build_synced_table(t) for t in load_workload().delta_synchronization.tables_to_sync),
        unity_catalog,
    ]
