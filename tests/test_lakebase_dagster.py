"""Lakebase assets, reports and the continuous sensor in a real Dagster instance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg

from orchestration.lakebase.assets import build_synced_table
from orchestration.lakebase.postgres import Lakebase
from orchestration.lakebase.sensors import build_continuous_sensor
from orchestration.lakebase.workload import load_workload
from orchestration.reports.assets import lakebase_bundle, lakebase_cost
from orchestration.warehouse import Warehouse
from tests.lakehouse import DEV, engine_resources

TABLES = {t.name: t for t in load_workload().delta_synchronization.tables_to_sync}


def fleet_health(warehouse: Warehouse, sensors: int) -> None:
    with warehouse.connect() as duck:
        duck.execute(
            "CREATE OR REPLACE TABLE gold_fleet_health AS SELECT 'node-' || (i % 3) AS node_id, "
            "'AMS_' || lpad(i::VARCHAR, 6, '0') AS sensor_id, 'us-east-1' AS region, "
            "now() - i * INTERVAL 1 MINUTE AS last_reading_at, 61.5 AS last_temperature, "
            "10 AS readings_24h, 'ok' AS status FROM range(?) t(i)",
            [sensors],
        )


def test_synced_table_and_cost_report_through_dagster(
    tmp_path: Path, lakebase_db: str, instance: dg.DagsterInstance
) -> None:
    warehouse = Warehouse(database_path=str(tmp_path / "warehouse.duckdb"))
    fleet_health(warehouse, 40)
    lakebase = Lakebase(dsn=lakebase_db)
    resources: dict[str, Any] = {"lakebase": lakebase, **engine_resources(warehouse, lakebase)}
    synced = build_synced_table(TABLES["gold_fleet_health"], DEV)
    result = dg.materialize([synced, lakebase_cost, lakebase_bundle], resources=resources,
                            instance=instance)  # fmt: skip
    assert result.success
    metadata = result.asset_materializations_for_node("lakebase__gold_fleet_health")[0].metadata
    assert metadata["dagster/row_count"].value == 40
    assert metadata["scheduling_policy"].value == "CONTINUOUS"
    with psycopg.connect(lakebase_db) as conn:
        assert conn.execute("SELECT count(*) FROM dev.gold_fleet_health").fetchone() == (40,)
    report = result.asset_materializations_for_node("reports__lakebase_cost")[0].metadata
    assert report["monthly_usd_provisioned"].value > report["monthly_usd_autoscaling"].value > 0
    assert "gold_fleet_health" in report["syncs_measured"].value
    document = json.loads(Path(report["json"].value).read_text())
    assert document["measured"]["tables"]["gold_fleet_health"] > 0  # measured, not assumed
    assert document["measured"]["database_bytes"] > 0
    bundle = result.asset_materializations_for_node("reports__lakebase_bundle")[0].metadata
    assert bundle["synced_tables"].value == len(TABLES)


def test_the_continuous_sensor_syncs_once_per_source_change(instance: dg.DagsterInstance) -> None:
    spec = TABLES["gold_fleet_health"]
    sensor = build_continuous_sensor(spec)
    context = dg.build_sensor_context(instance=instance)
    assert isinstance(sensor(context), dg.SkipReason)  # the source never materialized
    instance.report_runless_asset_event(dg.AssetMaterialization(spec.source_asset_key))
    first = sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(first, dg.SensorResult) and len(first.run_requests or []) == 1
    request = (first.run_requests or [])[0]
    assert request.asset_selection == [spec.asset_key]
    again = sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    assert isinstance(again, dg.SkipReason) and "in sync" in again.skip_message  # type: ignore[operator]
    instance.report_runless_asset_event(dg.AssetMaterialization(spec.source_asset_key))
    second = sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    assert isinstance(second, dg.SensorResult)
    assert (second.run_requests or [])[0].run_key != request.run_key
