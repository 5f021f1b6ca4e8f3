"""One bad object is quarantined with its reason and the rest of its hour loads; a passing S3
fault fails the run retryably and never removes rows (issue 17, items 4-7), on DuckDB."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestration.bronze.assets import QUARANTINE_CHECK, build_bronze_asset
from tests.conftest import bucket
from tests.lakehouse import (
    DEV,
    NOW,
    hour_key,
    materialize,
    put_object,
    reading,
    resources,
    warehouse_rows,
)
from tests.s3_faults import S3FaultProxy

bronze_raw = build_bronze_asset("raw", DEV)


def _parquet(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def _renamed(table: pa.Table, old: str, new: str) -> pa.Table:
    return table.rename_columns([new if n == old else n for n in table.column_names])


def _rows(first: int, n: int = 4) -> list[dict[str, Any]]:
    return [reading(i, NOW) for i in range(first, first + n)]


def hostile_objects(s3: Any, raw: str) -> dict[str, str]:
    """One object of each kind a broken or hostile node can write, each with the reason it
    must be quarantined for; shared with the fault test and the Databricks engine's test."""
    rows = _rows(100)
    named = pa.Table.from_pylist(rows)
    dup = pa.Table.from_arrays([named.column("id"), named.column("id")], names=["id", "id"])
    wide = pa.table({f"c{i}": [1] * 4 for i in range(300)})
    twin_fields = pa.StructArray.from_arrays([pa.array([1] * 4)] * 2, names=["a", "A"])
    big_footer = named.replace_schema_metadata({"padding": "x" * (2 << 20)})  # 2 MiB footer
    odd = {
        # After `good` in key order: it clashes with the table's `temperature`, or with the
        # column an earlier object of the same run brings.
        "zcase": (_renamed(named, "temperature", "Temperature"), {}),
        "space": (_renamed(named, "sensor_id", "sensor id"), {}),
        "long": (named.append_column("x" * 200, pa.array([1] * 4)), {}),
        "wide": (wide, {}),
        "nodeint": (named, {"node_id": 42}),
        "regiondict": (named, {"region": {"a": 1}}),
        "batchlist": (named, {"batch_id": ["b"]}),
        "nested": (named, {"rules": "@@NESTED@@"}),
        "bigsidecar": (named, {"padding": "x" * 70_000}),
        "newer": (named, {"format_version": 99}),
        "nobatch": (named, {"batch_id": None}),  # a required field missing
        "impostor": (named, {"node_id": "good"}),  # writes under its own key, claims another
        "structtwins": (named.append_column("s", twin_fields), {}),  # fields that clash inside
        "bigfooter": (big_footer, {}),
        # Two new columns that differ in case, by two nodes: the first (in key order) adds it.
        "newcol-a": (named.append_column("Newcol", pa.array([1.0] * 4)), {}),
        "newcol-b": (named.append_column("newcol", pa.array([2.0] * 4)), {}),
    }
    reasons = {
        "zcase": "differs only in case",
        "space": "holds a space",
        "long": "longer than 128",
        "wide": "300 columns and nested fields, over the cap",
        "nodeint": "field node_id is 42, not str",
        "regiondict": "field region is dict",
        "batchlist": "field batch_id is list",
        "nested": "not valid JSON",
        "bigsidecar": "over the cap of 65536",
        "newer": "version 99 is newer",
        "nobatch": "field batch_id is missing",
        "impostor": "sidecar names node 'good'",
        "dup": "appears twice",
        "empty": "unreadable Parquet",
        "structtwins": "column 's.A' appears as 'a' and 'A'",
        "bigfooter": "over the cap of 1048576",
        "newcol-b": "'newcol' differs only in case from bronze column 'Newcol'",
    }
    uris = {}
    for node, (table, overrides) in odd.items():
        uris[node] = put_object(s3, raw, NOW, table, node=node, sidecar_overrides=overrides)
    uris["dup"] = put_object(s3, raw, NOW, rows, node="dup", body_override=_parquet(dup))
    uris["empty"] = put_object(s3, raw, NOW, rows, node="empty", body_override=b"")
    nested_key = uris["nested"].split("/", 3)[3].removesuffix(".parquet") + ".json"
    text = s3.get_object(Bucket=raw, Key=nested_key)["Body"].read().decode()
    deep = "[" * 20_000 + "]" * 20_000  # under the size cap, deeper than Python's recursion
    s3.put_object(Bucket=raw, Key=nested_key, Body=text.replace('"@@NESTED@@"', deep).encode())
    return {uris[node]: reasons[node] for node in uris if node in reasons}


def test_each_kind_of_bad_object_is_quarantined_with_its_reason_and_the_hour_loads(
    s3: Any, s3_env: str, bucket_prefix: str, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    raw = bucket(bucket_prefix, "raw")
    res = resources(bucket_prefix, s3_env, tmp_path / "w.duckdb")
    put_object(s3, raw, NOW, _rows(1), node="good")
    materialize(bronze_raw, hour_key(NOW), res, instance)  # bronze knows `temperature`
    expected = hostile_objects(s3, raw)
    dotted = [reading(i, NOW, **{"site.code": f"S{i}"}) for i in range(10, 14)]
    put_object(s3, raw, NOW, dotted, node="good2")  # a dot is a name, not a field: it loads

    result = materialize(bronze_raw, hour_key(NOW), res, instance)

    assert warehouse_rows(tmp_path / "w.duckdb", "SELECT count(*) FROM bronze_raw") == [(12,)]
    nodes = warehouse_rows(tmp_path / "w.duckdb", "SELECT DISTINCT _node_id FROM bronze_raw")
    assert sorted(n for (n,) in nodes) == ["good", "good2", "newcol-a"]
    reasons = dict(
        warehouse_rows(tmp_path / "w.duckdb", "SELECT object_uri, reason FROM _bronze_quarantine")
    )
    assert set(reasons) == set(expected)
    for uri, why in expected.items():
        assert why in reasons[uri], (uri, reasons[uri])
    check = result.get_asset_check_evaluations()[0]
    assert check.check_name == QUARANTINE_CHECK and check.metadata["quarantined"].value == 17
    columns = [r[0] for r in warehouse_rows(tmp_path / "w.duckdb", "DESCRIBE bronze_raw")]
    assert "Temperature" not in columns and not any(len(c) > 128 for c in columns)
    sites = warehouse_rows(tmp_path / "w.duckdb", 'SELECT "site.code" FROM bronze_raw ORDER BY 1')
    assert sites == [("S10",), ("S11",), ("S12",), ("S13",)] + [(None,)] * 8  # NULLS LAST


def _load_with_faults(
    s3: Any, s3_env: str, bucket_prefix: str, tmp_path: Path, instance: dg.DagsterInstance,
    kind: str, times: int,
) -> tuple[dg.ExecuteInProcessResult, S3FaultProxy, Path]:  # fmt: skip
    raw = bucket(bucket_prefix, "raw")
    flaky = put_object(s3, raw, NOW, _rows(1), node="flaky")
    put_object(s3, raw, NOW, _rows(20), node="steady")
    proxy = S3FaultProxy(s3_env)
    path = tmp_path / "w.duckdb"
    with proxy.serving() as endpoint:
        res = resources(bucket_prefix, endpoint, path)
        materialize(bronze_raw, hour_key(NOW), res, instance)  # both objects in bronze
        put_object(s3, raw, NOW, _rows(40), node="late")  # a new upload: the hour is reloaded
        proxy.fail(flaky.split("/", 3)[3], kind, times)
        result = materialize(bronze_raw, hour_key(NOW), res, instance, raise_on_error=False)
    return result, proxy, path


def test_a_transient_s3_error_fails_the_load_retryably_and_keeps_the_rows(
    s3: Any, s3_env: str, bucket_prefix: str, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """503 SlowDown on every GET of one object (past boto's own retries, past the step's
    retries): the run fails, nothing is quarantined, bronze keeps every row it had."""
    result, proxy, path = _load_with_faults(
        s3, s3_env, bucket_prefix, tmp_path, instance, "slowdown", 1000
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "could not be read (SlowDown)" in str(failure.event_specific_data)
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(retries) == 2  # the asset's RetryPolicy: a transient error is worth retrying
    assert warehouse_rows(path, "SELECT count(*) FROM bronze_raw") == [(8,)]  # flaky + steady
    assert warehouse_rows(path, "SELECT count(*) FROM _bronze_quarantine") == [(0,)]
    assert proxy.failed


def test_a_connection_dropped_mid_body_is_retried_and_every_row_lands_once(
    s3: Any, s3_env: str, bucket_prefix: str, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """S3 drops the connection halfway through one object's body, twice, then recovers: the
    step's retry loads the hour with every row exactly once and quarantines nothing."""
    result, proxy, path = _load_with_faults(
        s3, s3_env, bucket_prefix, tmp_path, instance, "drop", 2
    )
    assert result.success
    assert [k for k, _ in proxy.failed] == ["drop", "drop"]
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(retries) >= 1
    rows = warehouse_rows(path, "SELECT _node_id, count(*), count(DISTINCT id) FROM bronze_raw "
                                "GROUP BY ALL ORDER BY 1")  # fmt: skip
    assert rows == [("flaky", 4, 4), ("late", 4, 4), ("steady", 4, 4)]
    assert warehouse_rows(path, "SELECT count(*) FROM _bronze_quarantine") == [(0,)]


def test_an_answer_about_the_object_quarantines_it_and_the_rest_of_the_hour_loads(
    s3: Any, s3_env: str, bucket_prefix: str, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """403 InvalidObjectState (the object went to Glacier) will not pass on a retry: the object
    is quarantined with S3's code and the hour loads, instead of failing it for every node."""
    result, proxy, path = _load_with_faults(
        s3, s3_env, bucket_prefix, tmp_path, instance, "archived", 1000
    )
    assert result.success and [k for k, _ in proxy.failed] == ["archived"]  # asked once
    reasons = warehouse_rows(path, "SELECT object_uri, reason FROM _bronze_quarantine")
    assert len(reasons) == 1 and "cannot be read from S3 (InvalidObjectState)" in reasons[0][1]
    rows = warehouse_rows(path, "SELECT _node_id, count(*) FROM bronze_raw GROUP BY ALL ORDER BY 1")
    assert rows == [("late", 4), ("steady", 4)]


# Several local Spark jobs: minutes on two busy cores (the default 300 s guards hangs).
@pytest.mark.timeout(900)
def test_on_databricks_bad_objects_quarantine_and_a_dropped_read_is_retried_without_loss(
    s3: Any, s3_env: str, bucket_prefix: str, tmp_path: Path, instance: dg.DagsterInstance,
    monkeypatch: Any,
) -> None:  # fmt: skip
    """The Databricks engine through the loopback stand-in of its REST API (no workspace here):
    the same objects quarantined for the same reasons as on DuckDB; then S3 drops the job's
    read of one object mid-body: the job fails, the step is retried, and every row lands once."""
    from tests.databricks_standin.server import serve
    from tests.lakehouse import databricks_resources, environment
    from tests.test_databricks_engine import TOKEN, fast_polling

    raw = bucket(bucket_prefix, "raw")
    put_object(s3, raw, NOW, _rows(1), node="good")
    proxy = S3FaultProxy(s3_env)
    with proxy.serving() as endpoint:
        task_env = {  # the job reads S3 through the faulty proxy; Dagster reads moto directly
            "AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret",
            "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
        }  # fmt: skip
        with serve(tmp_path / "workspace", TOKEN, task_env) as workspace:
            bronze = build_bronze_asset("raw", environment("databricks"))
            res = databricks_resources(
                fast_polling(workspace),
                resources(bucket_prefix, s3_env, tmp_path / "w.duckdb")["landing"],
            )
            expected = hostile_objects(s3, raw)  # one run: `zcase` clashes with `good`
            flaky = put_object(
                s3,
                raw,
                NOW,
                [reading(i, NOW, **{"site.code": f"S{i}"}) for i in range(10, 14)],
                node="flaky",
            )  # a column named with a dot: read by its exact name, not as a struct field
            archived = put_object(s3, raw, NOW, _rows(30), node="archived")
            proxy.fail(archived.split("/", 3)[3], "archived", 100)  # S3's answer for Glacier
            expected[archived] = "cannot be read from S3 (InvalidObjectState)"
            result = dg.materialize([bronze], partition_key=hour_key(NOW), resources=res,
                                    instance=instance)  # fmt: skip
            check = result.get_asset_check_evaluations()[0]
            table = str(check.metadata["objects"].value)
            assert check.metadata["quarantined"].value == len(expected) == 18
            for uri, why in expected.items():
                line = next(row for row in table.splitlines() if uri in row)
                assert why in line, line

            put_object(s3, raw, NOW, _rows(20), node="late")
            proxy.fail(flaky.split("/", 3)[3], "drop", 1)
            again = dg.materialize([bronze], partition_key=hour_key(NOW), resources=res,
                                   instance=instance)  # fmt: skip
            assert [k for k, _ in proxy.failed if k == "drop"] == ["drop"]
            retried = [e for e in again.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
            assert len(retried) == 1
            assert sorted(r.result for r in workspace.runs.values()) == sorted(
                ["SUCCESS"] * 2 + ["FAILED"]
            )
            import polars as pl

            from tests.databricks_standin.local_tables import read_table

            rows = pl.from_arrow(read_table(workspace.tables, "prod", "bronze_raw"))
            counts = (
                rows.group_by("_node_id").agg(pl.len(), pl.col("id").n_unique()).sort("_node_id")
            )
            assert counts.rows() == [
                ("flaky", 4, 4), ("good", 4, 4), ("late", 4, 4), ("newcol-a", 4, 4)
            ]  # fmt: skip
            sites = rows.filter(pl.col("_node_id") == "flaky")["site.code"].sort().to_list()
            assert sites == ["S10", "S11", "S12", "S13"]
