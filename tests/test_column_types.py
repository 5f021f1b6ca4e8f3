"""The one rule for a column the load's objects type differently, decided by Dagster and handed
to both engines (bronze.schema.agreed_types), and the sidecar field it reads."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from edge_agent.contract import SIDECAR_FORMAT, SIDECAR_FORMAT_VERSION, Sidecar, SidecarError
from orchestration.bronze.schema import agreed_types, arrow_type
from orchestration.databricks.plan import spark_type
from tests.databricks_standin.launcher import local_spark


def test_most_objects_decide_ties_go_by_name_and_null_gives_no_type() -> None:
    votes = agreed_types({
        "a": [("humidity", "double"), ("status", "int64"), ("note", "null")],
        "b": [("humidity", "int64"), ("status", "double"), ("note", "string")],
        "c": [("humidity", "int64"), ("status", "int64"), ("note", "null")],
        "d": [("level", "string")],
        "e": [("level", "int64")],
    })  # fmt: skip
    assert votes["humidity"].type == "int64" and votes["humidity"].holders == ("b", "c")
    assert votes["status"].type == "int64" and votes["status"].holders == ("a", "c")
    assert votes["level"].type == "int64"  # one each: "int64" sorts before "string"
    # NULL throughout (Parquet's null type) votes for nothing, but the column is decided.
    assert votes["note"].type == "string" and votes["note"].holders == ("b",)


def test_a_sidecar_cannot_stuff_the_vote() -> None:
    """One object's sidecar repeating a column, or spelling a type its own way, is one vote;
    a type name Arrow does not read is none, and "NULL" is the null type."""
    votes = agreed_types({
        "liar": [("humidity", "Int64")] * 500 + [("status", "NULL"), ("x", "weird<type>")],
        "b": [("humidity", "double"), ("status", "int64"), ("x", "int64")],
        "c": [("humidity", "double"), ("status", "double"), ("x", "string")],
    })  # fmt: skip
    assert votes["humidity"].type == "double" and votes["humidity"].holders == ("b", "c")
    assert votes["status"].type == "double"  # a tie of int64 and double, by name
    assert votes["x"].holders == ("b",) and "liar" not in votes["x"].holders


@pytest.mark.parametrize(
    "kind", [pa.int64(), pa.float64(), pa.string(), pa.bool_(), pa.timestamp("us", "UTC"),
             pa.timestamp("ns"), pa.date32()],
)  # fmt: skip
def test_a_sidecar_type_reads_back_as_the_arrow_type(kind: pa.DataType) -> None:
    assert arrow_type(str(kind)) == kind


def test_an_unknown_type_name_gives_no_type() -> None:
    assert arrow_type("struct<x: int64>") is None and arrow_type("DROP TABLE") is None


def _sidecar(**fields: object) -> bytes:
    document = {"format": SIDECAR_FORMAT, "format_version": SIDECAR_FORMAT_VERSION,
                "node_id": "n1", "batch_id": "b1", "row_count": 1, "content_sha256": "0" * 64,
                **fields}  # fmt: skip
    return json.dumps(document).encode()


def test_the_sidecar_schema_is_typed_and_a_malformed_one_is_refused_by_name() -> None:
    parsed = Sidecar.parse(_sidecar(schema=[{"name": "x", "type": "int64"}]))
    assert parsed.schema == (("x", "int64"),)
    assert Sidecar.parse(_sidecar()).schema is None  # the rejects' object declares none
    for bad in ({"x": "int64"}, [{"name": "x"}], [{"name": 1, "type": "int64"}], "x:int64"):
        with pytest.raises(SidecarError, match="field schema is not a list of columns"):
            Sidecar.parse(_sidecar(schema=bad))


def test_the_type_handed_to_the_job_is_the_one_spark_reads_from_parquet(tmp_path: Path) -> None:
    """`plan.spark_type` against local Spark reading a Parquet file of each Arrow type: the
    job compares the decided type with what it reads, so a wrong entry would refuse objects."""
    kinds = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(),
             pa.uint32(), pa.uint64(), pa.float32(), pa.float64(), pa.bool_(), pa.string(),
             pa.large_string(), pa.binary(), pa.date32(), pa.timestamp("us", "UTC"),
             pa.timestamp("ms"), pa.decimal128(10, 2)]  # fmt: skip
    table = pa.table({f"c{i}": pa.nulls(1, k) for i, k in enumerate(kinds)})
    pq.write_table(table, tmp_path / "types.parquet")
    spark = local_spark()
    try:
        read = spark.read.parquet(str(tmp_path / "types.parquet")).schema
        assert {str(k): read[f"c{i}"].dataType.simpleString() for i, k in enumerate(kinds)} == {
            str(k): spark_type(str(k)) for k in kinds
        }
    finally:
        spark.stop()
    assert spark_type("list<item: int64>") is None
