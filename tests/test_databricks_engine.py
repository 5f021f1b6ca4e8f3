"""The Databricks engine proven without a workspace: the real databricks-sdk and the real
dagster-databricks Pipes client talk to a loopback stand-in of the Databricks REST API, which
runs each submitted job on local PySpark. Local Spark here has no Delta jars, so the job writes
its tables as Parquet (same replace-by-predicate meaning); the Delta statements are pinned by
the snapshot in test_databricks_plan.py.

Equivalence: the same landing objects through the DuckDB engine and through the Databricks
path give identical silver and gold and the same expectation counts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from orchestration.bronze.assets import build_bronze_asset
from orchestration.databricks.workspace import Databricks
from orchestration.gold.assets import build_hourly_gold
from orchestration.reports.assets import pipeline_cost
from orchestration.resources import LandingZone
from orchestration.silver.assets import silver_asset
from orchestration.transforms.gold import GOLD_TABLES
from orchestration.warehouse import Warehouse
from tests.conftest import bucket
from tests.databricks_standin.local_tables import read_table
from tests.databricks_standin.server import Workspace, serve
from tests.lakehouse import (
    DEV,
    NOW,
    databricks_resources,
    environment,
    hour_key,
    put_object,
    quarantine_reasons,
    reading,
    resources,
)

TOKEN = "standin-token-0123456789"  # the stand-in's own, for this test only
DATABRICKS = environment("databricks")
EARLIER = NOW - timedelta(hours=1)


@pytest.fixture
def landing(s3: Any, bucket_prefix: str) -> str:
    """Two hours of raw and schematized objects with the lakehouse tests' tricky cases."""
    raw = [reading(i, NOW) for i in range(1, 41)]
    raw[0]["temperature"] = 200.0  # expect_or_drop: temperature_in_range
    raw[1]["sensor_id"] = "bad-id"  # expect_or_drop: sensor_id_format
    raw[2].update(anomaly_flag=1, anomaly_type=None)  # expect: anomaly_type_known
    raw[3].update(anomaly_flag=1, anomaly_type="spike", temperature=80.0)  # gold anomaly
    raw[4]["humidity"] = None  # NULL passes range checks
    put_object(s3, bucket(bucket_prefix, "raw"), NOW, raw)
    # Readings 21..40 again through schematized (another node): deduplicated by priority.
    put_object(s3, bucket(bucket_prefix, "schematized"), NOW, raw[20:], node="n2")
    # A corrected resend: an invalid raw copy and a valid schematized copy of one reading.
    bad = reading(99, EARLIER, temperature=-300.0)
    noise = reading(100, EARLIER, anomaly_flag=1, anomaly_type="noise")
    rest = [reading(i, EARLIER) for i in range(101, 130)]
    put_object(s3, bucket(bucket_prefix, "raw"), EARLIER, [bad, noise, *rest])
    put_object(s3, bucket(bucket_prefix, "schematized"), EARLIER, [reading(99, EARLIER)], node="n3")
    # Schema evolution (a new column) and a data column named like bronze's own lineage.
    # `_batch_id` collides with lineage and its renamed form `_batch_id_data` is taken too.
    evolved = [reading(i, EARLIER, site_code=f"S{i}", _region="dock-7", _batch_id="x",
                       _batch_id_data="y") for i in range(200, 210)]  # fmt: skip
    put_object(s3, bucket(bucket_prefix, "raw"), EARLIER, evolved, node="n6")
    # Quarantined on both engines: a checksum that disagrees, a row count that disagrees.
    put_object(s3, bucket(bucket_prefix, "raw"), EARLIER, [reading(500, EARLIER)], node="n4",
               sidecar_overrides={"content_sha256": "0" * 64})  # fmt: skip
    put_object(s3, bucket(bucket_prefix, "raw"), NOW, [reading(600, NOW)], node="n5",
               sidecar_overrides={"row_count": 7})  # fmt: skip
    return bucket_prefix


@pytest.fixture
def standin(tmp_path: Path, s3_env: str) -> Iterator[Workspace]:
    # The submitted job reads the landing buckets with these (an instance profile on AWS).
    task_env = {
        "AWS_ACCESS_KEY_ID": "test-key",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_env,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    with serve(tmp_path / "workspace", TOKEN, task_env) as workspace:
        yield workspace


def fast_polling(workspace: Workspace, environment: str = "databricks") -> Databricks:
    """The resource against the stand-in, polling runs and messages every half second."""
    return Databricks(host=workspace.host, token=TOKEN, message_interval_seconds=0.5,
                      poll_interval_seconds=0.5, environment=environment)  # fmt: skip


def _range_tags(first: str, last: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


def _run(assets: list[Any], res: dict[str, Any], instance: dg.DagsterInstance) -> Any:
    return dg.materialize(
        assets, resources=res, instance=instance, tags=_range_tags(hour_key(EARLIER), hour_key(NOW))
    )


def _quarantined(result: Any) -> dict[str, set[str]]:
    """Quarantined object URIs by bronze asset, from the quarantine check's table."""
    return {
        c.asset_key.path[-1]: set(re.findall(r"s3://\S+", c.metadata["objects"].value))
        for c in result.get_asset_check_evaluations()
    }


def _checks(result: Any) -> dict[str, int]:
    return {
        c.check_name: c.metadata["violations"].value
        for c in result.get_asset_check_evaluations()
        if "violations" in c.metadata
    }


def _duckdb_table(path: Path, table: str) -> pl.DataFrame:
    with duckdb.connect() as conn:
        conn.execute(f"ATTACH '{path}' AS lakehouse (READ_ONLY)")
        return pl.from_arrow(conn.execute(f"SELECT * FROM lakehouse.dev.{table}").to_arrow_table())


def _spark_table(workspace: Workspace, table: str) -> pl.DataFrame:
    return pl.from_arrow(read_table(workspace.tables, "prod", table))  # type: ignore[return-value]


def spark_raw_columns(workspace: Workspace) -> set[str]:
    return set(_spark_table(workspace, "bronze_raw").columns)


def _normalized(df: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    out = df.with_columns(
        pl.col(c).dt.replace_time_zone(None).cast(pl.Datetime("us")).alias(c)
        for c, t in df.schema.items() if isinstance(t, pl.Datetime)
    )  # fmt: skip
    return out.select(sorted(out.columns)).sort(keys)


def _assert_same(
    duck: pl.DataFrame, spark: pl.DataFrame, keys: list[str], ignore: set[str]
) -> None:
    columns = [c for c in duck.columns if c not in ignore]
    a, b = _normalized(duck.select(columns), keys), _normalized(spark.select(columns), keys)
    assert a.height == b.height > 0
    assert a.select(keys).rows() == b.select(keys).rows()
    for column in a.columns:
        for x, y in zip(a[column].to_list(), b[column].to_list(), strict=True):
            if isinstance(x, float) and isinstance(y, float):
                assert math.isclose(x, y, rel_tol=1e-9), (column, x, y)
            else:
                assert x == y, (column, x, y)


# Several local Spark jobs: minutes on two busy cores (the default 300 s guards hangs).
@pytest.mark.timeout(900)
def test_databricks_path_on_local_spark_equals_duckdb(
    landing: str, standin: Workspace, tmp_path: Path, s3_env: str,
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # DuckDB engine (environment dev).
    res = resources(landing, s3_env, tmp_path / "warehouse.duckdb")
    duck_bronze = _run(
        [build_bronze_asset("raw", DEV), build_bronze_asset("schematized", DEV)], res, instance
    )
    duck_silver = _run([silver_asset(DEV)], res, instance)
    _run([build_hourly_gold(g, DEV) for g in GOLD_TABLES], res, instance)

    # Databricks engine (environment databricks) through the stand-in: the same definitions.
    db_res = databricks_resources(fast_polling(standin), res["landing"])
    bronze = [build_bronze_asset(s, DATABRICKS) for s in ("raw", "schematized")]
    bronze_result = _run(bronze, db_res, instance)
    spark_silver = _run([silver_asset(DATABRICKS)], db_res, instance)
    _run([build_hourly_gold(g, DATABRICKS) for g in GOLD_TABLES], db_res, instance)
    warehouse = Warehouse(database_path=str(tmp_path / "cost.duckdb"), environment="databricks")
    cost = dg.materialize([pipeline_cost], resources={**db_res, "warehouse": warehouse},
                          instance=instance)  # fmt: skip

    # One Databricks job run per asset per Dagster run, whatever the number of hours.
    assert len(standin.runs) == 2 + 1 + len(GOLD_TABLES)
    assert all(r.result == "SUCCESS" for r in standin.runs.values())

    # The pipeline cost prices each job run's duration (from the Jobs API) in DBUs.
    compute = cost.asset_materializations_for_node(pipeline_cost.op.name)[0].metadata
    seconds = sum((r.ended_at or 0) - (r.started_at or 0) for r in standin.runs.values())
    assert compute["databricks_job_runs"].value == len(standin.runs)
    assert compute["databricks_run_seconds"].value == pytest.approx(
        seconds, abs=0.1 * len(standin.runs)
    )
    assert compute["databricks_usd"].value == pytest.approx(
        compute["databricks_run_seconds"].value / 3600 * 4.0 * 0.55, rel=1e-3)  # fmt: skip

    # Bronze: the same objects quarantined, for the same reasons, on both engines.
    assert _quarantined(bronze_result) == _quarantined(duck_bronze)
    assert len(_quarantined(duck_bronze)["raw"]) == 2, _quarantined(duck_bronze)

    assert _checks(spark_silver) == _checks(duck_silver)
    # Bronze kept the new column and the colliding one under the same names on both engines.
    for scenario in ("raw", "schematized"):
        duck = set(_duckdb_table(tmp_path / "warehouse.duckdb", f"bronze_{scenario}").columns)
        spark = set(_spark_table(standin, f"bronze_{scenario}").columns)
        assert duck - {"_rescued_data"} == spark, (scenario, duck ^ spark)
    assert {"site_code", "_region_data", "_batch_id_data", "_batch_id_data_"} <= (
        spark_raw_columns(standin)
    )
    # raw[0]'s 200 degrees; reading 99's invalid raw copy lost to its valid resend in dedup.
    assert _checks(duck_silver)["drop_temperature_in_range"] == 1

    _assert_same(
        _duckdb_table(tmp_path / "warehouse.duckdb", "silver_sensor_readings"),
        _spark_table(standin, "silver_sensor_readings"),
        ["sensor_id", "event_time"],
        ignore={"source_object"},  # the stand-in's job reads local copies: same URIs kept
    )
    for spec in GOLD_TABLES:
        _assert_same(
            _duckdb_table(tmp_path / "warehouse.duckdb", f"gold_{spec.entity}"),
            _spark_table(standin, f"gold_{spec.entity}"),
            list(spec.primary_key),
            ignore=set(),
        )

    # The same figures on both engines: per partition rows, objects, bytes and quarantined
    # objects, and bronze's column schema (names; each engine names its own types).
    for node in ("bronze__raw", "bronze__schematized"):
        assert _partition_figures(bronze_result, node) == _partition_figures(duck_bronze, node)
        assert _columns(bronze_result, node) == _columns(duck_bronze, node)
        assert _last(bronze_result, node)["schema_version"] == 1  # from Dagster's history
        assert _last(duck_bronze, node)["schema_version"] == 1  # from DuckDB's bookkeeping
    assert _partition_figures(spark_silver, "silver__sensor_readings") == _partition_figures(
        duck_silver, "silver__sensor_readings"
    )

    # Real Delta tables: a transaction log, one commit per job write, the change data feed that
    # TRIGGERED syncs read (its inserts are the rows the hourly gold write replaced in).
    gold = DeltaTable(str(standin.tables / "lakehouse" / "prod" / "gold_sensor_hourly_stats"))
    assert (Path(gold.table_uri.removeprefix("file://")) / "_delta_log").is_dir()
    assert gold.metadata().configuration.get("delta.enableChangeDataFeed") == "true"
    changes = pa.table(gold.load_cdf(starting_version=0).read_all())
    inserted = changes.column("_change_type").to_pylist().count("insert")
    assert inserted == _spark_table(standin, "gold_sensor_hourly_stats").height > 0
    silver_log = DeltaTable(str(standin.tables / "lakehouse" / "prod" / "silver_sensor_readings"))
    assert [h["operation"] for h in silver_log.history()] == ["WRITE"]  # one run, one commit


def _partition_figures(result: Any, node: str) -> dict[str, dict[str, Any]]:
    shared = ("dagster/row_count", "objects_loaded", "bytes_loaded", "objects_quarantined",
              "rows_from_bronze", "duplicates_removed", "rows_dropped_by_expectations")  # fmt: skip
    return {
        str(m.partition): {k: m.metadata[k].value for k in shared if k in m.metadata}
        for m in result.asset_materializations_for_node(node)
    }


def _last(result: Any, node: str) -> dict[str, Any]:
    (last, *_) = reversed(result.asset_materializations_for_node(node))
    return {k: v.value for k, v in last.metadata.items()}


def _columns(result: Any, node: str) -> set[str]:
    (last, *_) = reversed(result.asset_materializations_for_node(node))
    return {c.name for c in last.metadata["dagster/column_schema"].value.columns}


def test_classic_job_clusters_exchange_pipes_messages_through_dbfs(
    landing: str, standin: Workspace, s3_env: str, instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    res = databricks_resources(
        fast_polling(standin, "databricks-classic"),
        LandingZone(bucket_prefix=landing, endpoint_url=s3_env),
    )
    bronze = build_bronze_asset("raw", environment("databricks-classic"))
    result = dg.materialize([bronze], resources=res, instance=instance, partition_key=hour_key(NOW))
    (run,) = standin.runs.values()
    assert run.result == "SUCCESS"
    cluster = run.task["new_cluster"]
    assert cluster["spark_version"] == "16.4.x-scala2.12"
    assert "DAGSTER_PIPES_CONTEXT" in cluster["spark_env_vars"]  # bootstrap for classic compute
    metadata = result.asset_materializations_for_node(bronze.op.name)[0].metadata
    check = result.get_asset_check_evaluations()[0]
    why = {k: metadata[k].value for k in ("run_rows", "run_objects", "run_objects_quarantined")}
    reasons = [line.split(" | ")[-1] for line in check.metadata["objects"].value.splitlines()[2:]]
    assert metadata["dagster/row_count"].value == 40, (why, reasons)
    assert not any((standin.dbfs / "tmp").iterdir())  # Pipes' DBFS folders cleaned up


def test_expect_or_fail_blocks_the_databricks_silver_write(
    s3: Any, bucket_prefix: str, standin: Workspace, s3_env: str,
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    rows = [reading(i, NOW) for i in range(1, 11)]
    rows[3]["sensor_id"] = None  # expect_or_fail: sensor_id_present
    put_object(s3, bucket(bucket_prefix, "raw"), NOW, rows)
    res = databricks_resources(
        fast_polling(standin), LandingZone(bucket_prefix=bucket_prefix, endpoint_url=s3_env)
    )
    bronze = build_bronze_asset("raw", DATABRICKS)
    dg.materialize([bronze], resources=res, instance=instance, partition_key=hour_key(NOW))
    result = dg.materialize([silver_asset(DATABRICKS)], resources=res,
                            instance=instance, partition_key=hour_key(NOW),
                            raise_on_error=False)  # fmt: skip
    assert not result.success
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert not checks["fail_sensor_id_present"].passed
    assert checks["fail_sensor_id_present"].metadata["violations"].value == 1
    assert checks["fail_sensor_id_present"].severity == dg.AssetCheckSeverity.ERROR
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "expect_or_fail violated (sensor_id_present: 1 row(s))" in str(
        failure.event_specific_data
    )
    # Nothing was written: the silver table does not exist on the workspace.
    assert not (standin.tables / "lakehouse" / "prod" / "silver_sensor_readings").exists()


def test_fail_on_new_columns_fails_the_databricks_run_once_without_retry(
    s3: Any, bucket_prefix: str, standin: Workspace, s3_env: str, instance: dg.DagsterInstance
) -> None:
    """As on DuckDB: failOnNewColumns stops the load, names the columns, writes nothing, and
    the step is not retried (a retry cannot accept the new schema)."""
    raw = bucket(bucket_prefix, "raw")
    put_object(s3, raw, NOW, [reading(i, NOW) for i in range(1, 6)])
    res = databricks_resources(
        fast_polling(standin), LandingZone(bucket_prefix=bucket_prefix, endpoint_url=s3_env)
    )
    bronze = build_bronze_asset("raw", DATABRICKS)
    dg.materialize([bronze], resources=res, instance=instance, partition_key=hour_key(NOW))
    put_object(s3, raw, NOW, [reading(i, NOW, co2_ppm=400.0) for i in (6, 7)], node="n2")
    config = {"ops": {"bronze__raw": {"config": {"schema_mode": "failOnNewColumns"}}}}
    result = dg.materialize([bronze], resources=res, instance=instance, run_config=config,
                            partition_key=hour_key(NOW), raise_on_error=False)  # fmt: skip
    assert not result.success
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "new column(s) co2_ppm (schema mode failOnNewColumns)" in str(
        failure.event_specific_data
    )
    assert len(standin.runs) == 2  # the first load and the refused one: no retry
    assert _spark_table(standin, "bronze_raw").height == 5  # nothing written


def test_a_type_conflict_with_the_table_is_decided_the_same_on_both_engines(
    s3: Any, bucket_prefix: str, standin: Workspace, s3_env: str, tmp_path: Path,
    instance: dg.DagsterInstance,
) -> None:  # fmt: skip
    """The table's type wins on both engines: values that cast join it (whole-number humidity
    into a double column), an object whose values do not ("hot" degrees) is quarantined with
    the same reason, and the rest of the hour loads. On a first load the objects' types are
    decided once, by Dagster, for both engines (schematized: most objects' type per column)."""
    raw = bucket(bucket_prefix, "raw")
    put_object(s3, raw, NOW, [reading(i, NOW) for i in range(1, 6)])
    schematized = bucket(bucket_prefix, "schematized")
    disputed = [  # humidity: double, int64, int64; status_code: int64, double, int64
        put_object(s3, schematized, NOW, [reading(i, NOW, humidity=45.5) for i in (1, 2)],
                   node="a"),
        put_object(s3, schematized, NOW, [reading(i, NOW, humidity=40, status_code=1.5)
                                          for i in (3, 4)], node="b"),
    ]  # fmt: skip
    put_object(s3, schematized, NOW, [reading(i, NOW, humidity=41) for i in (5, 6)], node="c")
    landing = LandingZone(bucket_prefix=bucket_prefix, endpoint_url=s3_env)
    duck = resources(bucket_prefix, s3_env, tmp_path / "warehouse.duckdb")
    spark = databricks_resources(fast_polling(standin), landing)
    engines = (
        (duck, build_bronze_asset("raw", DEV), build_bronze_asset("schematized", DEV)),
        (spark, build_bronze_asset("raw", DATABRICKS),
         build_bronze_asset("schematized", DATABRICKS)),
    )  # fmt: skip
    for res, bronze, first_load in engines:
        result = dg.materialize([bronze, first_load], resources=res, instance=instance,
                                partition_key=hour_key(NOW))  # fmt: skip
        check = result.get_asset_check_evaluations()
        table = next(str(c.metadata["objects"].value) for c in check
                     if c.asset_key == first_load.key).replace("bigint", "int64")  # fmt: skip
        why = "schema cannot be reconciled: column {} is double, other objects have int64"
        assert quarantine_reasons(table) == {
            disputed[0]: why.format("humidity"),
            disputed[1]: why.format("status_code"),
        }, table
        (loaded,) = result.asset_materializations_for_node(first_load.op.name)
        assert loaded.metadata["dagster/row_count"].value == 2  # object c
    hot = put_object(s3, raw, NOW, [reading(i, NOW, temperature="hot") for i in (6, 7)],
                     node="hot")  # fmt: skip
    put_object(s3, raw, NOW, [reading(i, NOW, humidity=40) for i in (8, 9)], node="whole")
    put_object(s3, raw, NOW, [reading(i, NOW, status_code=1.5) for i in (10, 11)], node="half")
    outcomes = []
    for res, bronze, _ in engines:
        result = dg.materialize([bronze], resources=res, instance=instance,
                                partition_key=hour_key(NOW))  # fmt: skip
        check = result.get_asset_check_evaluations()[0]
        table = str(check.metadata["objects"].value)
        (materialization,) = result.asset_materializations_for_node(bronze.op.name)
        figures = {k: v.value for k, v in materialization.metadata.items()}
        outcomes.append((_quarantined(result)["raw"], figures["dagster/row_count"]))
        # humidity's whole numbers joined the double column: no new schema version
        assert figures["schema_version"] == 1 and figures["columns_added"] == "none"
        assert "column temperature is string, the table has double" in table, table
        assert "column status_code is double, the table has int64" in table.replace(
            "bigint", "int64"
        ), table  # each engine names its own integer type
    assert outcomes[0][1] == outcomes[1][1] == 7
    assert len(outcomes[0][0]) == len(outcomes[1][0]) == 2 and hot in outcomes[0][0]
