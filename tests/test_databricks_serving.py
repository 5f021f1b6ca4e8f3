"""Lakebase and Unity Catalog through the Databricks API, against the loopback stand-in.

The stand-in keeps database instances, catalogs, synced tables and grants as state, and a
synced table's pipeline update copies its source table (Parquet, as local Spark writes it)
into a real PostgreSQL: what Lakebase does from the Delta table on a workspace.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pyarrow as pa
import pytest

from orchestration.catalog.assets import unity_catalog_asset
from orchestration.databricks.lakebase_api import CREDENTIALS
from orchestration.databricks.workspace import Databricks
from orchestration.lakebase.assets import build_synced_table
from orchestration.lakebase.workload import load_workload
from orchestration.resources import LandingZone
from tests.databricks_standin.local_tables import write_table
from tests.databricks_standin.server import Workspace, serve
from tests.lakehouse import databricks_resources, environment

TOKEN = "standin-serving-token"  # the stand-in's own, for this test only
DATABRICKS = environment("databricks")
unity_catalog = unity_catalog_asset(DATABRICKS)


@pytest.fixture
def standin(
    tmp_path: Path, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Workspace]:
    with serve(tmp_path / "workspace", TOKEN, postgres_dsn=postgres_dsn) as workspace:
        yield workspace


def _gold(workspace: Workspace, rows: int) -> None:
    """gold_sensor_hourly_stats as the Databricks job leaves it (a Delta table)."""
    hour = datetime(2026, 11, 25, 10, tzinfo=UTC)
    table = pa.table({
        "sensor_id": [f"AMS_{i:06d}" for i in range(rows)],
        "hour": pa.array([hour] * rows, pa.timestamp("us", "UTC")),
        "readings": list(range(rows)),
        "avg_temperature": [60.0 + i / 10 for i in range(rows)],
    })  # fmt: skip
    write_table(workspace.tables, "prod", "gold_sensor_hourly_stats", table)


def _resources(workspace: Workspace) -> dict[str, Any]:
    databricks = Databricks(host=workspace.host, token=TOKEN)
    return databricks_resources(databricks, LandingZone(bucket_prefix="edge"))


def test_synced_table_get_or_create_sync_and_rows_in_postgres(
    standin: Workspace, postgres_dsn: str, instance: dg.DagsterInstance
) -> None:
    spec = next(t for t in load_workload().delta_synchronization.tables_to_sync
                if t.name == "gold_sensor_hourly_stats")  # fmt: skip
    asset = build_synced_table(spec, DATABRICKS)
    _gold(standin, 25)
    first = dg.materialize([asset], resources=_resources(standin), instance=instance)
    metadata = first.asset_materializations_for_node(asset.op.name)[0].metadata
    assert metadata["dagster/row_count"].value == 25
    assert metadata["state"].value.startswith("SYNCED_TABLE_ONLINE")
    assert "edge-lakebase" in metadata["created"].value

    _gold(standin, 40)  # new gold rows, then the same asset again: nothing duplicated
    second = dg.materialize([asset], resources=_resources(standin), instance=instance)
    metadata = second.asset_materializations_for_node(asset.op.name)[0].metadata
    assert metadata["created"].value == "none (all existed)"
    assert metadata["dagster/row_count"].value == 40
    assert {k: len(v) for k, v in standin.lakebase.objects.items()} == {
        "instances": 1, "catalogs": 1, "synced_tables": 1}  # fmt: skip
    dsn = postgres_dsn.replace("/postgres?", "/lakebase?")
    with psycopg.connect(dsn) as conn:
        count = conn.execute("SELECT count(*) FROM prod.gold_sensor_hourly_stats").fetchone()
    assert count == (40,)
    # Row counts were read with a workspace database credential (the embedded PostgreSQL
    # trusts local connections, so it does not check that token as Lakebase would).
    assert standin.calls["POST /api/2.0/database/credentials"] >= 1


def test_database_credentials_are_refreshed_before_they_expire(standin: Workspace) -> None:
    client = Databricks(host=standin.host, token=TOKEN).client()
    standin.lakebase.credential_ttl_seconds = 3600
    first = CREDENTIALS.token(client, "edge-lakebase")
    assert CREDENTIALS.token(client, "edge-lakebase") == first  # cached while valid
    standin.lakebase.credential_ttl_seconds = 60  # inside the refresh margin (5 minutes)
    CREDENTIALS._tokens.clear()
    short = CREDENTIALS.token(client, "edge-lakebase")
    assert CREDENTIALS.token(client, "edge-lakebase") != short  # refreshed, not reused


def test_unity_catalog_objects_and_grants_are_applied_once(
    standin: Workspace, instance: dg.DagsterInstance
) -> None:
    resources = _resources(standin)
    first = dg.materialize([unity_catalog], resources=resources, instance=instance)
    metadata = first.asset_materializations_for_node(unity_catalog.op.name)[0].metadata
    locations = standin.unity.objects["external-locations"]
    # Every landing bucket, regional ones too, read-only.
    assert sorted(loc["url"] for loc in locations.values()) == sorted(
        f"s3://{b}/"
        for group in LandingZone(bucket_prefix="edge").buckets().values()
        for b in group
    )
    assert len(locations) == 6 and all(loc["read_only"] for loc in locations.values())
    assert set(standin.unity.objects["schemas"]) == {"lakehouse.prod"}
    assert standin.unity.grants("schema", "lakehouse.prod")["privilege_assignments"] == [
        {"principal": "lakehouse_app", "privileges": ["SELECT", "USE_SCHEMA"]},
        {"principal": "lakehouse_readers", "privileges": ["SELECT", "USE_SCHEMA"]},
    ]
    assert "lakehouse_readers" in metadata["privileges_granted"].value

    second = dg.materialize([unity_catalog], resources=resources, instance=instance)
    metadata = second.asset_materializations_for_node(unity_catalog.op.name)[0].metadata
    assert metadata["created"].value == "none"
    assert metadata["privileges_granted"].value == "none (all held)"
    assert len(standin.unity.objects["external-locations"]) == 6
