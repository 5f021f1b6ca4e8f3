"""The warehouse resource: dagster-duckdb's DuckDBResource plus the attached catalog, UTC, the
lock wait, and nothing left attached when an asset fails inside it."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster_duckdb import DuckDBResource

from orchestration.bronze.assets import build_bronze_asset
from orchestration.warehouse import Warehouse
from tests.conftest import bucket
from tests.lakehouse import (
    DEV,
    NOW,
    hour_key,
    materialize,
    put_object,
    reading,
    resources,
)


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


def test_warehouse_files_are_owner_only_whatever_the_umask(
    tmp_path: Path, s3: Any, s3_env: str, bucket_prefix: str, instance: dg.DagsterInstance
) -> None:
    """As root the home is 0711: a 0644 file with a known name (the WAL) is readable by anyone."""
    put_object(s3, bucket(bucket_prefix, "raw"), NOW, [reading(i, NOW) for i in range(1, 6)])
    res = resources(bucket_prefix, s3_env, tmp_path / "warehouse.duckdb")
    path = tmp_path / "warehouse.duckdb"
    wal = path.with_name(path.name + ".wal")
    before = os.umask(0o022)  # a usual login umask: files 0644 unless the project says so
    try:
        materialize(build_bronze_asset("raw", DEV), hour_key(NOW), res, instance)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        with res["warehouse"].connect() as conn:
            # A write DuckDB has not checkpointed yet: it lives in the WAL, made just now.
            conn.execute("CREATE TABLE wal_probe AS SELECT 1 AS x")
            assert wal.exists()
            assert stat.S_IMODE(wal.stat().st_mode) == 0o600
        assert os.umask(0o022) == 0o022  # the process's umask is as it was
    finally:
        os.umask(before)
