"""The one rule for a column the load's objects type differently, decided by Dagster and handed
to both engines (bronze.schema.agreed_types), and the sidecar field it reads."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from edge_agent.contract import SIDECAR_FORMAT, SIDECAR_FORMAT_VERSION, Sidecar, SidecarError
from orchestration.bronze.schema import agreed_types, arrow_type


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
    assert "note" not in votes  # only one object gives it a type: nothing to decide


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
