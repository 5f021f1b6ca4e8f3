"""Unity Catalog objects the environment needs, generated from the same settings, and applied
idempotently through the SDK: the catalog and schema, one read-only external location per
landing bucket (regional ones too), and the grants for the readers and the application role.
The seeds managed these with Terraform; here the same dicts also go into the Asset Bundle."""

from __future__ import annotations

from typing import Any

from orchestration.settings import EnvironmentSettings

READER_PRIVILEGES = {"catalog": ["USE_CATALOG"], "schema": ["USE_SCHEMA", "SELECT"]}


def external_location_name(bucket: str) -> str:
    return "landing_" + bucket.replace("-", "_").replace(".", "_")


def unity_objects(settings: EnvironmentSettings, buckets: list[str]) -> dict[str, Any]:
    workspace = settings.databricks
    if workspace is None:
        raise ValueError(f"environment {settings.name} has no databricks: block")
    schema = f"{settings.catalog}.{settings.schema}"
    principals = (workspace.readers_group, workspace.app_role)
    return {
        "catalogs": [{"name": settings.catalog, "comment": "edge lakehouse (Dagster-managed)"}],
        "schemas": [{"catalog_name": settings.catalog, "name": settings.schema}],
        "external_locations": [
            {
                "name": external_location_name(bucket),
                "url": f"s3://{bucket}/",
                "credential_name": workspace.storage_credential,
                "read_only": True,
                "comment": "edge landing bucket (written by edge-agent)",
            }
            for bucket in sorted(buckets)
        ],
        "grants": [
            {
                "securable_type": kind,
                "full_name": name,
                "principal": principal,
                "privileges": READER_PRIVILEGES[kind],
            }
            for kind, name in (("catalog", settings.catalog), ("schema", schema))
            for principal in principals
        ],
    }


def apply_unity(client: Any, objects: dict[str, Any]) -> dict[str, list[str]]:
    """Create what is missing and add missing privileges; what exists stays as it is."""
    from databricks.sdk.service.catalog import PermissionsChange, Privilege

    from orchestration.databricks.lakebase_api import Ensured, get_or_create

    ensured = Ensured([], [])
    for c in objects["catalogs"]:
        get_or_create(client.catalogs.get, lambda c=c: client.catalogs.create(**c), c["name"],
                      ensured)  # fmt: skip
    for s in objects["schemas"]:
        full = f"{s['catalog_name']}.{s['name']}"
        get_or_create(client.schemas.get, lambda s=s: client.schemas.create(**s), full, ensured)
    for loc in objects["external_locations"]:
        get_or_create(client.external_locations.get,
                      lambda loc=loc: client.external_locations.create(**loc), loc["name"],
                      ensured)  # fmt: skip
    granted = []
    for grant in objects["grants"]:
        current = client.grants.get(grant["securable_type"], grant["full_name"])
        held = {
            p.value if hasattr(p, "value") else str(p)
            for a in current.privilege_assignments or []
            if a.principal == grant["principal"]
            for p in a.privileges or []
        }
        missing = [p for p in grant["privileges"] if p not in held]
        if missing:
            change = PermissionsChange(
                principal=grant["principal"], add=[Privilege(p) for p in missing]
            )
            client.grants.update(grant["securable_type"], grant["full_name"], changes=[change])
            granted += [f"{p} on {grant['full_name']} to {grant['principal']}" for p in missing]
    return {"created": ensured.created, "existing": ensured.existing, "granted": granted}
