"""Databricks Asset Bundle resources for the same workload: deploys it to real Lakebase."""

from __future__ import annotations

from typing import Any

import yaml

from orchestration.lakebase.cost import capacity_units
from orchestration.lakebase.workload import Workload
from orchestration.settings import EnvironmentSettings


def bundle_resources(
    workload: Workload, settings: EnvironmentSettings, instance_name: str = "edge-lakebase"
) -> dict[str, Any]:
    """`resources:` with `database_instances`, `database_catalogs`, `synced_database_tables`."""
    instance = workload.database_instance
    cu = capacity_units(
        instance.bulk_writes_per_second, instance.continuous_writes_per_second,
        instance.reads_per_second,
    )  # fmt: skip
    catalog = f"{settings.catalog}_lakebase_{settings.name}"
    database = "lakebase"
    tables: dict[str, Any] = {}
    for table in workload.delta_synchronization.tables_to_sync:
        spec: dict[str, Any] = {
            "source_table_full_name": settings.table_name(*table.name.split("_", 1)),
            "primary_key_columns": list(table.primary_keys),
            "scheduling_policy": table.scheduling_policy.value,
            "new_pipeline_spec": {
                "storage_catalog": settings.catalog,
                "storage_schema": settings.schema,
            },
        }
        if table.timeseries_key:
            spec["timeseries_key"] = table.timeseries_key
        tables[table.name] = {
            "name": f"{catalog}.{settings.schema}.{table.name}",
            "database_instance_name": instance_name,
            "logical_database_name": database,
            "spec": spec,
        }
    resources: dict[str, Any] = {
        "database_instances": {
            "lakebase": {
                "name": instance_name,
                "capacity": f"CU_{cu}",
                "node_count": 1 + instance.number_of_readable_secondaries,
                "enable_readable_secondaries": instance.number_of_readable_secondaries > 0,
            }
        },
        "database_catalogs": {
            "lakebase_catalog": {
                "name": catalog,
                "database_instance_name": instance_name,
                "database_name": database,
                "create_database_if_not_exists": True,
            }
        },
        "synced_database_tables": tables,
    }
    if settings.databricks is not None:  # the schema and its grants, from the same settings
        resources["schemas"] = {
            "lakehouse": {
                "catalog_name": settings.catalog,
                "name": settings.schema,
                "grants": [
                    {"principal": p, "privileges": ["USE_SCHEMA", "SELECT"]}
                    for p in (settings.databricks.readers_group, settings.databricks.app_role)
                ],
            }
        }
    return {"resources": resources}


def bundle_yaml(workload: Workload, settings: EnvironmentSettings) -> str:
    header = "# Generated from orchestration/lakebase/workload.yaml; include it in databricks.yml\n"
    return header + yaml.safe_dump(bundle_resources(workload, settings), sort_keys=False)
