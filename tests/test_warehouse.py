"""The warehouse resource: dagster-duckdb's DuckDBResource plus the attached catalog, UTC, the
lock wait, and nothing left attached when an asset fails inside it."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster_duckdb import DuckDBResource

from orchestration.warehouse import Warehouse


def test_the_warehouse_is_dagster_duckdbs_resource_with_the_catalog_attached(
    tmp_path: Path,
) -> None:
    warehouse = Warehouse(
        database_path=str(tmp_path / "w.duckdb"), connection_config={"threads": 1}
    )
    assert isinstance(warehouse, DuckDBResource)
    with warehouse.connect() as conn:
        conn.execute("CREATE TABLE t AS SELECT 1 AS x")
        settings = conn.execute(
            "SELECT current_setting('threads'), current_setting('TimeZone'), "
            "current_database(), current_schema()"
        ).fetchone()
    assert settings == (1, "UTC", "lakehouse", "dev")
    with pytest.raises(RuntimeError, match="asset failed"), warehouse.connect() as conn:
        raise RuntimeError("asset failed")
    with warehouse.connect(read_only=True) as conn:  # attaches again: nothing was left behind
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
