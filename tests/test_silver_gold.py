"""Silver expectations (DLT semantics), deduplication across scenarios, gold tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from bench import lakebase as lakebase_bench
from orchestration.bronze.assets import build_bronze_asset
from orchestration.gold.assets import (
    build_hourly_gold,
    fleet_health_asset,
    readings_all_regions_asset,
)
from orchestration.maintenance.compaction import compact_table
from orchestration.settings import ConfigurationError, environment_settings
from orchestration.silver.assets import silver_asset
from orchestration.transforms.gold import GOLD_TABLES
from orchestration.warehouse import Warehouse
from tests.conftest import bucket
from tests.lakehouse import (
    DEV,
    NOW,
    engine_resources,
    hour_key,
    materialize,
    put_object,
    reading,
    resources,
    warehouse_rows,
)

silver_sensor_readings = silver_asset(DEV)
fleet_health = fleet_health_asset(DEV)
readings_all_regions = readings_all_regions_asset(DEV)


@pytest.fixture
def loaded(s3: Any, s3_env: str, bucket_prefix: str, tmp_path: Path, instance: dg.DagsterInstance):
    """Bronze raw + schematized for one hour, with duplicates and expectation violations."""
    raw_rows = [reading(i, NOW) for i in range(1, 21)]
    raw_rows[0]["temperature"] = 200.0  # expect_or_drop: temperature_in_range
    raw_rows[1]["sensor_id"] = "bad-id"  # expect_or_drop: sensor_id_format
    raw_rows[2].update(anomaly_flag=1, anomaly_type=None)  # expect (warn): anomaly_type_known
    raw_rows[3].update(anomaly_flag=1, anomaly_type="spike", temperature=80.0)
    put_object(s3, bucket(bucket_prefix, "raw"), NOW, raw_rows)
    # The same readings 11..20 also arrive through the schematized bucket (another node config).
    put_object(s3, bucket(bucket_prefix, "schematized"), NOW, raw_rows[10:], node="n2")
    res = resources(bucket_prefix, s3_env, tmp_path / "warehouse.duckdb")
    for scenario in ("raw", "schematized"):
        materialize(build_bronze_asset(scenario, DEV), hour_key(NOW), res, instance)
    return res, tmp_path / "warehouse.duckdb"


def warehouse_columns(path: Path, table: str) -> list[str]:
    return [r[0] for r in warehouse_rows(path, f"SELECT column_name FROM (DESCRIBE {table})")]


def test_silver_dedups_and_counts_every_expectation(
    loaded: Any, instance: dg.DagsterInstance
) -> None:
    res, path = loaded
    result = materialize(
        silver_sensor_readings, hour_key(NOW), engine_resources(res["warehouse"]), instance
    )
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["drop_temperature_in_range"].metadata["rows_dropped"].value == 1
    assert checks["drop_sensor_id_format"].metadata["rows_dropped"].value == 1
    assert checks["warn_anomaly_type_known"].metadata["violations"].value == 1
    # DLT semantics: dropping is the intended outcome, and 1 row in 20 is within the thresholds.
    assert checks["warn_anomaly_type_known"].passed and checks["drop_temperature_in_range"].passed
    assert checks["warn_anomaly_type_known"].severity == dg.AssetCheckSeverity.WARN
    assert checks["fail_sensor_id_present"].passed and checks["fail_event_time_present"].passed
    assert {c.partition for c in checks.values()} == {hour_key(NOW)}  # evaluated per partition
    metadata = result.asset_materializations_for_node("silver__sensor_readings")[0].metadata
    assert metadata["rows_from_bronze"].value == 30
    assert metadata["duplicates_removed"].value == 10
    assert metadata["rows_dropped_by_expectations"].value == 2
    assert metadata["dagster/row_count"].value == 18
    # What the UI shows for the table: its name and every column, typed and described.
    run_metadata = result.asset_materializations_for_node("silver__sensor_readings")[-1].metadata
    assert run_metadata["dagster/table_name"].value == "lakehouse.dev.silver_sensor_readings"
    columns = {c.name: c for c in run_metadata["dagster/column_schema"].value.columns}
    assert columns["sensor_id"].description and columns["_partition_hour"].type == "TIMESTAMPTZ"
    assert set(columns) == set(warehouse_columns(path, "silver_sensor_readings"))
    # The schematized copy wins the tie; every reading is there once.
    counts = warehouse_rows(
        path, "SELECT source_scenario, count(*) FROM silver_sensor_readings GROUP BY 1 ORDER BY 1"
    )
    assert counts == [("raw", 8), ("schematized", 10)]
    again = materialize(
        silver_sensor_readings, hour_key(NOW), engine_resources(res["warehouse"]), instance
    )
    assert again.success
    assert warehouse_rows(path, "SELECT count(*) FROM silver_sensor_readings") == [(18,)]


def test_expect_or_fail_blocks_and_leaves_silver_unchanged(
    s3: Any, s3_env: str, bucket_prefix: str, loaded: Any, instance: dg.DagsterInstance
) -> None:
    res, path = loaded
    materialize(silver_sensor_readings, hour_key(NOW), engine_resources(res["warehouse"]), instance)
    rows = [reading(i, NOW) for i in range(1, 21)]
    rows[5]["sensor_id"] = None
    put_object(s3, bucket(bucket_prefix, "raw"), NOW, rows)  # the raw object is rewritten
    materialize(build_bronze_asset("raw", DEV), hour_key(NOW), res, instance)
    result = materialize(
        silver_sensor_readings,
        hour_key(NOW),
        engine_resources(res["warehouse"]),
        instance,
        raise_on_error=False,
    )
    assert not result.success
    failed = {c.check_name: c for c in result.get_asset_check_evaluations() if not c.passed}
    assert failed["fail_sensor_id_present"].severity == dg.AssetCheckSeverity.ERROR
    assert failed["fail_sensor_id_present"].metadata["violations"].value == 1
    assert warehouse_rows(path, "SELECT count(*) FROM silver_sensor_readings") == [(18,)]
    spec = next(s for s in silver_sensor_readings.check_specs if s.name == "fail_sensor_id_present")
    assert spec.blocking


def test_gold_tables_match_silver_and_have_unique_keys(
    loaded: Any, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    res, path = loaded
    warehouse = engine_resources(res["warehouse"])
    materialize(silver_sensor_readings, hour_key(NOW), warehouse, instance)
    for spec in GOLD_TABLES:
        materialize(build_hourly_gold(spec, DEV), hour_key(NOW), warehouse, instance)
        keys = ", ".join(spec.primary_key)
        dupes = warehouse_rows(
            path,
            f"SELECT {keys}, count(*) FROM gold_{spec.entity} GROUP BY ALL HAVING count(*) > 1",
        )
        assert dupes == [], spec.entity
    per_sensor = dict(
        warehouse_rows(path, "SELECT sensor_id, readings FROM gold_sensor_hourly_stats")
    )
    expected = dict(
        warehouse_rows(path, "SELECT sensor_id, count(*) FROM silver_sensor_readings GROUP BY 1")
    )
    assert per_sensor == expected
    bench_warehouse = Warehouse(database_path=str(tmp_path / "bench.duckdb"))
    lakebase_bench.gold_table(bench_warehouse, 10)  # the Lakebase benchmark's stand-in
    describe = f"SELECT column_name, column_type FROM (DESCRIBE {lakebase_bench.TABLE})"
    with bench_warehouse.connect() as duck:
        assert duck.execute(describe).fetchall() == warehouse_rows(path, describe)
    reasons = dict(
        warehouse_rows(path, "SELECT sensor_id || '@' || event_time, reason FROM gold_anomalies")
    )
    assert any("anomaly:spike" in r and "temperature_high" in r for r in reasons.values())
    result = materialize(fleet_health, None, warehouse, instance)
    check = result.get_asset_check_evaluations()[0]
    assert check.passed  # readings are from this hour
    materialize(readings_all_regions, None, warehouse, instance)
    assert warehouse_rows(path, "SELECT count(*) FROM gold_readings_all_regions") == [(18,)]


def test_environment_picks_catalog_and_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (
        environment_settings("prod").table_name("gold", "anomalies")
        == "lakehouse.prod.gold_anomalies"
    )
    monkeypatch.setenv("LAKEHOUSE_ENV", "staging")
    assert environment_settings().schema == "staging"
    monkeypatch.setenv("LAKEHOUSE_ENV", "qa")
    with pytest.raises(ConfigurationError, match="LAKEHOUSE_ENV='qa' is not one of dev, staging"):
        environment_settings()


def test_compaction_rewrites_a_fragmented_table(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        conn.execute(
            "CREATE TABLE bronze_raw AS SELECT range AS id, "
            "TIMESTAMPTZ '2026-01-01' + to_hours(range % 48) AS _partition_hour FROM range(300000)"
        )
        for hour in range(48):  # 48 partition replaces leave half-empty row groups behind
            conn.execute(
                "DELETE FROM bronze_raw "
                "WHERE _partition_hour = TIMESTAMPTZ '2026-01-01' + to_hours(?)",
                [hour],
            )
            conn.execute(
                "INSERT INTO bronze_raw SELECT range, TIMESTAMPTZ '2026-01-01' + to_hours(?) "
                "FROM range(2000)",
                [hour],
            )
            conn.execute("CHECKPOINT")
        result = compact_table(conn, "bronze_raw")
        assert result.rewritten and result.row_groups_after < result.row_groups_before
        assert conn.execute("SELECT count(*) FROM bronze_raw").fetchone() == (96000,)
        assert not compact_table(conn, "bronze_raw").rewritten  # nothing left to do


def test_a_valid_reading_wins_over_an_invalid_copy_of_the_same_key(
    s3: Any, s3_env: str, bucket_prefix: str, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """A corrected resend: the preferred scenario's copy is invalid, another's is valid."""
    bad = [reading(i, NOW, temperature=200.0) for i in range(1, 6)]
    good = [reading(i, NOW) for i in range(1, 6)]
    put_object(s3, bucket(bucket_prefix, "schematized"), NOW, bad, node="n1")
    put_object(s3, bucket(bucket_prefix, "raw"), NOW, good, node="n1")
    res = resources(bucket_prefix, s3_env, tmp_path / "warehouse.duckdb")
    for scenario in ("raw", "schematized"):
        materialize(build_bronze_asset(scenario, DEV), hour_key(NOW), res, instance)
    result = materialize(
        silver_sensor_readings, hour_key(NOW), engine_resources(res["warehouse"]), instance
    )
    metadata = result.asset_materializations_for_node("silver__sensor_readings")[0].metadata
    assert metadata["duplicates_removed"].value == 5
    assert warehouse_rows(
        tmp_path / "warehouse.duckdb",
        "SELECT count(*), max(temperature) < 100, min(source_scenario) FROM silver_sensor_readings",
    ) == [(5, True, "raw")]


@pytest.mark.parametrize(
    ("action", "bad", "rows", "passed", "severity"),
    [
        ("expect", 1, 100, True, dg.AssetCheckSeverity.WARN),  # recorded, below 5 %
        ("expect", 6, 100, False, dg.AssetCheckSeverity.WARN),  # past 5 %: a WARN signal
        ("expect_or_drop", 10, 100, True, dg.AssetCheckSeverity.WARN),  # dropped: intended
        ("expect_or_drop", 11, 100, False, dg.AssetCheckSeverity.WARN),  # past 10 % dropped
        ("expect_or_fail", 1, 100, False, dg.AssetCheckSeverity.ERROR),  # blocks
        ("expect_or_fail", 0, 0, True, dg.AssetCheckSeverity.ERROR),
    ],
)
def test_check_outcomes_follow_lakeflow_semantics_and_the_thresholds(
    action: str, bad: int, rows: int, passed: bool, severity: dg.AssetCheckSeverity
) -> None:
    from orchestration.silver.assets import check_result
    from orchestration.transforms.expectations import EXPECTATIONS

    expectation = next(e for e in EXPECTATIONS if e.action == action)
    thresholds = environment_settings().expectations  # 5 % warn, 10 % drop (environments.yaml)
    check = check_result(expectation, bad, rows, thresholds)
    assert (check.passed, check.severity) == (passed, severity)
    assert check.metadata["action"].value == action
    if action == "expect_or_drop":
        assert check.metadata["rows_dropped"].value == bad
