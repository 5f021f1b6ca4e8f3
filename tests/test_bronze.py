"""Bronze loads: replace semantics, quarantine, schema evolution modes, retries."""

from __future__ import annotations

import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from orchestration.bronze import bookkeeping, loader
from orchestration.bronze.assets import QUARANTINE_CHECK, build_bronze_asset
from tests.conftest import OTHER_REGION, bucket
from tests.lakehouse import (
    DEV,
    NOW,
    engine_resources,
    hour_key,
    materialize,
    put_object,
    quarantine_reasons,
    reading,
    resources,
    warehouse_rows,
)

bronze_raw = build_bronze_asset("raw", DEV)


@pytest.fixture
def warehouse_path(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


def test_rematerializing_replaces_the_partition(
    s3: Any, s3_env: str, bucket_prefix: str, warehouse_path: Path, instance: dg.DagsterInstance
) -> None:
    raw = bucket(bucket_prefix, "raw")
    put_object(s3, raw, NOW, [reading(i, NOW) for i in range(1, 11)])
    res = resources(bucket_prefix, s3_env, warehouse_path)
    for _ in range(2):
        materialize(bronze_raw, hour_key(NOW), res, instance)
    assert warehouse_rows(
        warehouse_path, "SELECT count(*), count(DISTINCT id) FROM bronze_raw"
    ) == [(10, 10)]
    lineage = warehouse_rows(
        warehouse_path, "SELECT DISTINCT _source_object, _node_id FROM bronze_raw"
    )
    assert lineage == [(f"s3://{raw}/year={NOW:%Y}/month={NOW:%m}/day={NOW:%d}/hour={NOW:%H}/n1/"
                        "b0000001-000000000001-000000000010.parquet", "n1")]  # fmt: skip

    # The agent redoes a batch with other content (rows were corrected at the source).
    put_object(s3, raw, NOW, [reading(i, NOW, temperature=70.0) for i in range(1, 6)])
    materialize(bronze_raw, hour_key(NOW), res, instance)
    assert warehouse_rows(warehouse_path, "SELECT count(*), min(temperature) FROM bronze_raw") == [
        (5, 70.0)
    ]


def test_bad_objects_are_quarantined_and_named_the_rest_loads(
    s3: Any, s3_env: str, bucket_prefix: str, warehouse_path: Path, instance: dg.DagsterInstance
) -> None:
    raw = bucket(bucket_prefix, "raw")
    rows = [reading(i, NOW) for i in range(1, 11)]
    put_object(s3, raw, NOW, rows, node="good")
    bad_sum = put_object(
        s3,
        raw,
        NOW,
        rows,
        node="checksum",
        sidecar_overrides={"content_sha256": "0" * 64, "content_md5": "0" * 32},
    )
    bad_count = put_object(s3, raw, NOW, rows, node="count", sidecar_overrides={"row_count": 99})
    truncated = put_object(s3, raw, NOW, rows, node="truncated", body_override=b"PAR1 not parquet")
    result = materialize(
        bronze_raw, hour_key(NOW), resources(bucket_prefix, s3_env, warehouse_path), instance
    )
    assert warehouse_rows(warehouse_path, "SELECT count(*) FROM bronze_raw") == [(10,)]
    check = result.get_asset_check_evaluations()[0]
    assert check.check_name == QUARANTINE_CHECK and not check.passed
    named = check.metadata["objects"].value
    for uri, reason in ((bad_sum, "checksum mismatch"), (bad_count, "row count mismatch"),
                        (truncated, "unreadable Parquet")):  # fmt: skip
        assert uri in named and reason in named
    reasons = dict(
        warehouse_rows(warehouse_path, "SELECT object_uri, reason FROM _bronze_quarantine")
    )
    assert set(reasons) == {bad_sum, bad_count, truncated}


def _drift(s3: Any, prefix: str) -> None:
    raw = bucket(prefix, "raw")
    earlier = NOW - timedelta(hours=1)
    put_object(s3, raw, earlier, [reading(i, earlier) for i in range(1, 6)])
    put_object(s3, raw, NOW, [reading(i, NOW, co2_ppm=400.0 + i) for i in range(6, 11)], node="new")


@pytest.mark.parametrize("mode", ["addNewColumns", "rescue", "failOnNewColumns", "none"])
def test_schema_drift_in_each_mode(
    mode: str, s3: Any, s3_env: str, bucket_prefix: str, warehouse_path: Path,
    instance: dg.DagsterInstance,
) -> None:  # fmt: skip
    _drift(s3, bucket_prefix)
    res = resources(bucket_prefix, s3_env, warehouse_path)
    config = {"ops": {"bronze__raw": {"config": {"schema_mode": mode}}}}
    materialize(bronze_raw, hour_key(NOW - timedelta(hours=1)), res, instance, config)
    result = materialize(bronze_raw, hour_key(NOW), res, instance, config, raise_on_error=False)
    columns = [r[0] for r in warehouse_rows(warehouse_path, "DESCRIBE bronze_raw")]
    if mode == "failOnNewColumns":
        assert not result.success
        failure = result.get_step_failure_events()[0].step_failure_data.error
        assert "co2_ppm" in str(failure)
        assert warehouse_rows(warehouse_path, "SELECT count(*) FROM bronze_raw") == [(5,)]
        return
    assert result.success
    metadata = result.asset_materializations_for_node("bronze__raw")[0].metadata
    if mode == "addNewColumns":
        assert "co2_ppm" in columns and metadata["schema_version"].value == 2
        assert warehouse_rows(warehouse_path, "SELECT count(co2_ppm) FROM bronze_raw") == [(5,)]
        assert "added co2_ppm" in metadata["schema_history"].value
    elif mode == "rescue":
        assert "co2_ppm" not in columns and metadata["rows_rescued"].value == 5
        rescued = warehouse_rows(
            warehouse_path, "SELECT _rescued_data FROM bronze_raw WHERE id = 6"
        )
        assert rescued == [('{"co2_ppm": 406.0}',)]
    else:
        assert "co2_ppm" not in columns and metadata["schema_version"].value == 1
        assert warehouse_rows(warehouse_path, "SELECT count(_rescued_data) FROM bronze_raw") == [
            (0,)
        ]
    assert warehouse_rows(warehouse_path, "SELECT count(*) FROM bronze_raw") == [(10,)]


@pytest.mark.parametrize("mode", ["addNewColumns", "rescue"])
def test_a_mistyped_column_is_quarantined_or_rescued(
    mode: str, s3: Any, s3_env: str, bucket_prefix: str, warehouse_path: Path,
    instance: dg.DagsterInstance,
) -> None:  # fmt: skip
    raw = bucket(bucket_prefix, "raw")
    put_object(s3, raw, NOW, [reading(i, NOW) for i in range(1, 6)], node="a")
    typed = pa.Table.from_pylist([reading(i, NOW, temperature="hot") for i in range(6, 8)])
    uri = put_object(s3, raw, NOW, typed, node="b")
    config = {"ops": {"bronze__raw": {"config": {"schema_mode": mode}}}}
    result = materialize(
        bronze_raw,
        hour_key(NOW),
        resources(bucket_prefix, s3_env, warehouse_path),
        instance,
        config,
    )
    check = result.get_asset_check_evaluations()[0]
    if mode == "addNewColumns":
        assert not check.passed and uri in check.metadata["objects"].value
        assert "schema cannot be reconciled" in check.metadata["objects"].value
        assert warehouse_rows(warehouse_path, "SELECT count(*) FROM bronze_raw") == [(5,)]
    else:
        assert check.passed
        rescued = warehouse_rows(
            warehouse_path, "SELECT temperature, _rescued_data FROM bronze_raw WHERE id = 6"
        )
        assert rescued == [(None, '{"temperature": "hot"}')]


def test_the_first_load_takes_the_types_most_objects_give_a_column(
    s3: Any, s3_env: str, bucket_prefix: str, warehouse_path: Path,
    instance: dg.DagsterInstance,
) -> None:  # fmt: skip
    """Three objects, each typing humidity and status_code its own way: the table takes for
    each column the type most of them state (Dagster decides it once, for either engine), not
    the first object's whole schema; the objects whose values do not cast are quarantined."""
    raw = bucket(bucket_prefix, "raw")
    fractional = put_object(s3, raw, NOW, [reading(i, NOW, humidity=45.5) for i in (1, 2)],
                            node="a")  # humidity double, status_code int64  # fmt: skip
    half = put_object(s3, raw, NOW, [reading(i, NOW, humidity=40, status_code=1.5)
                                     for i in (3, 4)], node="b")  # fmt: skip
    put_object(s3, raw, NOW, [reading(i, NOW, humidity=41) for i in (5, 6)], node="c")
    result = materialize(
        bronze_raw, hour_key(NOW), resources(bucket_prefix, s3_env, warehouse_path), instance
    )
    objects = str(result.get_asset_check_evaluations()[0].metadata["objects"].value)
    assert quarantine_reasons(objects) == {
        fractional: "schema cannot be reconciled: column humidity is double, other objects have "
        "int64",
        half: "schema cannot be reconciled: column status_code is double, other objects have int64",
    }
    columns = "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?"
    types = dict(warehouse_rows(warehouse_path, columns.replace("?", "'bronze_raw'")))
    assert (types["humidity"], types["status_code"]) == ("BIGINT", "BIGINT")
    assert warehouse_rows(warehouse_path, "SELECT id FROM bronze_raw ORDER BY id") == [(5,), (6,)]


def test_a_failed_run_is_retried_without_duplicates(
    s3: Any, s3_env: str, bucket_prefix: str, warehouse_path: Path,
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The first attempt dies inside the load transaction; the retry policy runs it again."""
    raw = bucket(bucket_prefix, "raw")
    put_object(s3, raw, NOW, [reading(i, NOW) for i in range(1, 11)])
    real = bookkeeping.record_schema_version
    calls = {"n": 0}

    def dies_once(*args: Any, **kwargs: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("disk full, just this once")
        return real(*args, **kwargs)

    monkeypatch.setattr(bookkeeping, "record_schema_version", dies_once)
    result = materialize(
        bronze_raw, hour_key(NOW), resources(bucket_prefix, s3_env, warehouse_path), instance
    )
    assert result.success and calls["n"] == 2
    assert any(e.event_type_value == "STEP_RESTARTED" for e in result.all_events)
    assert warehouse_rows(
        warehouse_path, "SELECT count(*), count(DISTINCT id) FROM bronze_raw"
    ) == [(10, 10)]


def test_regional_partitions_by_hour_and_region(
    s3: Any, s3_env: str, bucket_prefix: str, warehouse_path: Path, instance: dg.DagsterInstance
) -> None:
    eu = bucket(bucket_prefix, "regional", OTHER_REGION)
    us = bucket(bucket_prefix, "regional")
    put_object(s3, eu, NOW, [reading(i, NOW) for i in range(1, 4)], region=OTHER_REGION)
    put_object(s3, us, NOW, [reading(i, NOW) for i in range(1, 6)])
    regional = build_bronze_asset("regional", DEV)
    res = resources(bucket_prefix, s3_env, warehouse_path)
    for region in (OTHER_REGION, "us-east-1"):
        key = str(dg.MultiPartitionKey({"hour": hour_key(NOW), "region": region}))
        materialize(regional, key, res, instance)
    counts = warehouse_rows(
        warehouse_path, "SELECT _region, count(*) FROM bronze_regional GROUP BY 1 ORDER BY 1"
    )
    assert counts == [(OTHER_REGION, 3), ("us-east-1", 5)]
    # Each partition links to its landing objects; the link opens (the endpoint's listing).
    key = str(dg.MultiPartitionKey({"hour": hour_key(NOW), "region": OTHER_REGION}))
    event = instance.fetch_materializations(
        dg.AssetRecordsFilter(dg.AssetKey(["bronze", "regional"]), asset_partitions=[key]),
        limit=1,
    ).records[0]
    url = event.asset_materialization.metadata["landing_objects"].value  # type: ignore[union-attr]
    assert url.startswith(f"{s3_env}/{eu}?prefix=year%3D"), url
    with urllib.request.urlopen(url) as response:  # noqa: S310 (an http URL just asserted)
        listing = response.read().decode()
    assert listing.count(".parquet</Key>") == 1 and f"<Name>{eu}</Name>" in listing


def test_objects_of_another_schema_load_one_by_one_beside_the_bulk_scan(
    s3: Any, s3_env: str, bucket_prefix: str, warehouse_path: Path, instance: dg.DagsterInstance
) -> None:
    """The most common schema loads in one DuckDB scan; an object with a new column is read and
    reconciled alone, and its column is added (addNewColumns)."""
    raw = bucket(bucket_prefix, "raw")
    for node in ("a", "b"):
        put_object(s3, raw, NOW, [reading(i, NOW) for i in range(1, 6)], node=node)
    put_object(s3, raw, NOW, [reading(i, NOW, firmware="2.1") for i in range(6, 9)], node="new")
    result = materialize(
        bronze_raw, hour_key(NOW), resources(bucket_prefix, s3_env, warehouse_path), instance
    )
    metadata = result.asset_materializations_for_node("bronze__raw")[0].metadata
    assert metadata["objects_loaded"].value == 3
    assert metadata["run_objects_bulk_loaded"].value == 2
    assert metadata["columns_added"].value == "none"  # the table is new: nothing was added to it
    assert warehouse_rows(
        warehouse_path,
        "SELECT _node_id, count(*), count(firmware) FROM bronze_raw GROUP BY 1 ORDER BY 1",
    ) == [("a", 5, 0), ("b", 5, 0), ("new", 3, 3)]


def test_loads_larger_than_a_duckdb_row_group_persist_on_every_path(
    s3: Any, s3_env: str, bucket_prefix: str, warehouse_path: Path, instance: dg.DagsterInstance
) -> None:
    """DuckDB 1.5.5 drops large inserts into a table created in the same transaction by
    `CREATE TABLE AS SELECT ... LIMIT 0`; every layer must keep rows beyond 122,880."""
    from orchestration.gold.assets import build_hourly_gold
    from orchestration.silver.assets import silver_asset
    from orchestration.transforms.gold import GOLD_TABLES

    silver_sensor_readings = silver_asset(DEV)

    raw = bucket(bucket_prefix, "raw")

    def rows(first: int, count: int) -> pa.Table:
        ids = list(range(first, first + count))
        return pa.table({
            "id": ids,
            "timestamp": [(NOW + timedelta(microseconds=i)).isoformat() for i in ids],
            "sensor_id": ["AMS_000001"] * count,
            "temperature": [61.0] * count,
        })  # fmt: skip

    put_object(s3, raw, NOW, rows(0, 80_000), node="scan")
    one_by_one = rows(80_000, 80_000).append_column("firmware", pa.array(["2.1"] * 80_000))
    put_object(s3, raw, NOW, one_by_one, node="alone")
    res = resources(bucket_prefix, s3_env, warehouse_path)
    result = materialize(bronze_raw, hour_key(NOW), res, instance)
    metadata = result.asset_materializations_for_node("bronze__raw")[0].metadata
    assert metadata["run_objects_bulk_loaded"].value == 1
    assert warehouse_rows(warehouse_path, "SELECT count(*) FROM bronze_raw") == [(160_000,)]
    warehouse = engine_resources(res["warehouse"])
    materialize(silver_sensor_readings, hour_key(NOW), warehouse, instance)
    assert warehouse_rows(warehouse_path, "SELECT count(*) FROM silver_sensor_readings") == [
        (160_000,)
    ]
    materialize(build_hourly_gold(GOLD_TABLES[0], DEV), hour_key(NOW), warehouse, instance)
    assert warehouse_rows(warehouse_path, "SELECT readings FROM gold_sensor_hourly_stats") == [
        (160_000,)
    ]


def test_a_corrupt_data_page_behind_a_good_footer_is_quarantined_the_rest_loads(
    s3: Any, s3_env: str, bucket_prefix: str, warehouse_path: Path, instance: dg.DagsterInstance
) -> None:
    """The footer passes, so the object joins the bulk scan; the scan fails on its pages, the
    load is rolled back and redone object by object, which names the bad object."""
    from edge_agent.batches import encode_parquet

    raw = bucket(bucket_prefix, "raw")
    rows = [reading(i, NOW) for i in range(1, 201)]
    put_object(s3, raw, NOW, rows, node="good")
    body = bytearray(encode_parquet(pa.Table.from_pylist(rows), "timestamp"))
    body[8:400] = bytes(392)  # the first column chunk's pages; the footer at the end is intact
    corrupt = put_object(s3, raw, NOW, rows, node="corrupt", body_override=bytes(body))
    result = materialize(
        bronze_raw, hour_key(NOW), resources(bucket_prefix, s3_env, warehouse_path), instance
    )
    assert warehouse_rows(warehouse_path, "SELECT DISTINCT _node_id FROM bronze_raw") == [("good",)]
    assert warehouse_rows(warehouse_path, "SELECT count(*) FROM bronze_raw") == [(200,)]
    check = result.get_asset_check_evaluations()[0]
    assert not check.passed and corrupt in check.metadata["objects"].value
    assert "unreadable Parquet" in check.metadata["objects"].value
    metadata = result.asset_materializations_for_node("bronze__raw")[0].metadata
    assert metadata["run_objects_bulk_loaded"].value == 0  # the redo went object by object


def test_a_load_bigger_than_the_staging_budget_goes_in_chunks(
    s3: Any, s3_env: str, bucket_prefix: str, warehouse_path: Path, instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Each object its own chunk: staged, scanned and deleted before the next; all rows land."""
    monkeypatch.setattr(loader, "STAGING_BYTES", 1)
    raw = bucket(bucket_prefix, "raw")
    for n, node in enumerate(("a", "b", "c")):
        put_object(s3, raw, NOW, [reading(i, NOW) for i in range(1, 4 + n)], node=node)
    result = materialize(
        bronze_raw, hour_key(NOW), resources(bucket_prefix, s3_env, warehouse_path), instance
    )
    metadata = result.asset_materializations_for_node("bronze__raw")[0].metadata
    assert metadata["run_objects_bulk_loaded"].value == 3
    assert warehouse_rows(
        warehouse_path, "SELECT _node_id, count(*) FROM bronze_raw GROUP BY 1 ORDER BY 1"
    ) == [("a", 3), ("b", 4), ("c", 5)]


def test_a_new_column_joins_an_hour_that_already_has_rows(
    s3: Any, s3_env: str, bucket_prefix: str, warehouse_path: Path, instance: dg.DagsterInstance
) -> None:
    """addNewColumns on a reload of a loaded hour: rows replaced and the column added at once."""
    raw = bucket(bucket_prefix, "raw")
    put_object(s3, raw, NOW, [reading(i, NOW) for i in range(1, 6)])
    res = resources(bucket_prefix, s3_env, warehouse_path)
    materialize(bronze_raw, hour_key(NOW), res, instance)
    put_object(s3, raw, NOW, [reading(i, NOW, co2_ppm=400.0 + i) for i in range(6, 9)], node="n2")
    result = materialize(bronze_raw, hour_key(NOW), res, instance, raise_on_error=False)
    assert result.success
    assert warehouse_rows(
        warehouse_path, "SELECT count(*), count(co2_ppm), count(DISTINCT id) FROM bronze_raw"
    ) == [(8, 3, 8)]
    metadata = result.asset_materializations_for_node("bronze__raw")[0].metadata
    assert metadata["columns_added"].value == "co2_ppm"
    preview = metadata["preview"]  # a real table in the UI (polars -> TableRecords)
    assert isinstance(preview, dg.TableMetadataValue) and len(preview.records) == 5
    assert "sensor_id" in [c.name for c in preview.schema.columns]
    again = materialize(bronze_raw, hour_key(NOW), res, instance)  # and replaced, not appended
    assert again.success
    assert warehouse_rows(warehouse_path, "SELECT count(*) FROM bronze_raw") == [(8,)]


def test_a_data_column_named_like_a_lineage_column_is_kept_under_another_name(
    s3: Any, s3_env: str, bucket_prefix: str, warehouse_path: Path, instance: dg.DagsterInstance
) -> None:
    raw = bucket(bucket_prefix, "raw")
    put_object(s3, raw, NOW, [reading(i, NOW) for i in range(1, 4)], node="a")
    put_object(s3, raw, NOW, [reading(i, NOW, _node_id="spoofed") for i in range(4, 7)], node="b")
    res = resources(bucket_prefix, s3_env, warehouse_path)
    result = materialize(bronze_raw, hour_key(NOW), res, instance)
    rows = warehouse_rows(
        warehouse_path,
        "SELECT _node_id, _node_id_data, count(*) FROM bronze_raw GROUP BY ALL ORDER BY ALL",
    )
    assert rows == [("a", None, 3), ("b", "spoofed", 3)]
    metadata = result.asset_materializations_for_node("bronze__raw")[0].metadata
    assert metadata["columns_renamed"].value == "_node_id -> _node_id_data"
    assert metadata["run_objects_quarantined"].value == 0


def test_a_number_that_would_change_is_a_conflict_on_every_path(
    s3: Any, s3_env: str, bucket_prefix: str, warehouse_path: Path, instance: dg.DagsterInstance
) -> None:
    """1.5 into an integer column: quarantined, never rounded, whether the object would have
    gone through the bulk scan (it alone has its schema) or object by object; a whole number
    into a double column joins it."""
    raw = bucket(bucket_prefix, "raw")
    res = resources(bucket_prefix, s3_env, warehouse_path)
    put_object(s3, raw, NOW, [reading(i, NOW) for i in range(1, 6)])
    materialize(bronze_raw, hour_key(NOW), res, instance)
    half = put_object(s3, raw, NOW, [reading(i, NOW, status_code=1.5) for i in (6, 7, 8)],
                      node="half")  # fmt: skip
    put_object(s3, raw, NOW, [reading(i, NOW, humidity=40) for i in (9, 10)], node="whole")
    result = materialize(bronze_raw, hour_key(NOW), res, instance)
    check = result.get_asset_check_evaluations()[0]
    table = str(check.metadata["objects"].value)
    assert half in table and "column status_code is double, the table has int64" in table
    assert warehouse_rows(
        warehouse_path, "SELECT count(*), max(status_code), max(humidity) FROM bronze_raw"
    ) == [(7, 0, 40.0)]
