"""Late data reaches silver, gold and the TRIGGERED synced tables on its own (issue 9.2).

The loop is daemon-like (tests/daemon.py): landing sensor ticks, automation evaluations and the
runs they request, on a real instance, real S3 (moto server), a DuckDB file and PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg

from orchestration.defs import build_definitions
from orchestration.lakebase.postgres import Lakebase
from orchestration.resources import LandingZone
from orchestration.warehouse import Warehouse
from tests.daemon import DaemonLoop
from tests.lakehouse import NOW, hour_key, put_object, reading, warehouse_rows


def test_a_ten_day_late_upload_is_rebuilt_once_through_silver_gold_and_postgres(
    s3: Any, s3_env: str, bucket_prefix: str, tmp_path: Path, instance: dg.DagsterInstance,
    lakebase_db: str,
) -> None:  # fmt: skip
    landing = LandingZone(bucket_prefix=bucket_prefix, endpoint_url=s3_env)
    warehouse_path = tmp_path / "warehouse.duckdb"
    defs = build_definitions(
        {
            "landing": landing,
            "warehouse": Warehouse(database_path=str(warehouse_path)),
            "lakebase": Lakebase(dsn=lakebase_db),
        }
    )
    loop = DaemonLoop(defs, instance, landing)
    # Today: two scenarios deliver the current hour; the platform settles.
    put_object(s3, landing.bucket("raw"), NOW, [reading(i, NOW) for i in range(1, 11)])
    put_object(
        s3, landing.bucket("schematized"), NOW, [reading(i, NOW) for i in range(11, 16)], node="n2"
    )
    loop.run_until_quiet()
    assert loop.materializations("silver/sensor_readings", hour_key(NOW)) == 1
    assert loop.materializations("gold/sensor_hourly_stats", hour_key(NOW)) == 1
    assert loop.materializations("lakebase/gold_sensor_hourly_stats") == 1

    # A node that was offline for ten days uploads its old hour (raw only) and reports it.
    late = NOW - timedelta(days=10)
    uri = put_object(
        s3, landing.bucket("raw"), late, [reading(i, late) for i in range(100, 107)], node="late"
    )
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=["landing", "raw"], partition=hour_key(late), metadata={"object_uri": uri}
        )
    )
    loop.run_until_quiet()

    assert loop.materializations("bronze/raw", hour_key(late)) == 1
    assert loop.materializations("silver/sensor_readings", hour_key(late)) == 1  # exactly once
    for gold in ("sensor_hourly_stats", "region_hourly_stats", "anomalies"):
        assert loop.materializations(f"gold/{gold}", hour_key(late)) == 1, gold
    # The current hour was not rebuilt for someone else's late data.
    assert loop.materializations("silver/sensor_readings", hour_key(NOW)) == 1
    assert loop.materializations("lakebase/gold_sensor_hourly_stats") == 2  # after the change
    assert all(ok for _, _, ok in loop.runs), [r for r in loop.runs if not r[2]]

    silver = warehouse_rows(
        warehouse_path,
        "SELECT count(*) FROM silver_sensor_readings WHERE _partition_hour = "
        f"TIMESTAMPTZ '{late.isoformat()}'",
    )
    assert silver == [(7,)]
    gold = warehouse_rows(
        warehouse_path,
        f"SELECT sum(readings) FROM gold_sensor_hourly_stats WHERE hour = "
        f"TIMESTAMPTZ '{late.isoformat()}'",
    )
    assert gold == [(7,)]
    with psycopg.connect(lakebase_db) as conn:
        synced = conn.execute(
            "SELECT sum(readings) FROM dev.gold_sensor_hourly_stats WHERE hour = %s", [late]
        ).fetchone()
    assert synced == (7,)
