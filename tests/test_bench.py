"""Benchmarks in their tiny mode, so they never rot (no timing is asserted here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import edge_upload


def test_edge_upload_benchmark_tiny(tmp_path: Path) -> None:
    results = edge_upload.main(["--tiny", "--workdir", str(tmp_path)])
    for key in ("agent_rows_per_s", "naive_rows_per_s", "ceiling_rows_per_s",
                "agent_vs_naive", "agent_vs_ceiling", "agent_peak_rss_mb_big_backlog",
                "duckdb_copy_rows_per_s", "agent_vs_duckdb_copy"):  # fmt: skip
        assert results[key] > 0, key


def test_lakehouse_benchmark_tiny(tmp_path: Path) -> None:
    from bench import lakehouse

    results = lakehouse.main(["--tiny", "--workdir", str(tmp_path)])
    assert results["bronze_rows"] == results["ceiling_rows"] == results["dagster_rows"] == 20_000
    assert results["dlt_rows"] > 0 and results["bronze_vs_dlt"] > 0
    for ticks in results["ticks"].values():
        assert ticks["reconciliation_ticks"] >= 1 and ticks["steady_tick_s"] > 0


def test_lakebase_benchmark_tiny(tmp_path: Path) -> None:
    from bench import lakebase

    results = lakebase.main(["--tiny", "--workdir", str(tmp_path)])
    for key in ("snapshot_rows_per_s", "ceiling_rows_per_s", "pandas_rows_per_s",
                "dlt_arrow_rows_per_s", "dlt_rows_rows_per_s"):  # fmt: skip
        assert results[key] > 0, key
    assert 0 < results["triggered_scattered_upserted"] < results["rows"] * 0.05  # changed only
    assert results["triggered_feed_upserted"] == results["triggered_feed_compared"] > 0
    assert results["triggered_feed_compared"] < results["rows"]  # only the rewritten hours


def test_dashboards_benchmark_tiny(tmp_path: Path) -> None:
    from bench import dashboards

    results = dashboards.main(["--tiny", "--workdir", str(tmp_path)])
    for variant in ("no_indexes", "indexes"):
        run = results[variant][0]
        assert run["qps"] > 0 and 0 < run["p50_ms"] <= run["p95_ms"] <= run["p99_ms"], variant
        assert set(run["per_query_p95_ms"]) >= {"hottest_sensors_24h", "anomalies_by_region_day"}


# Several local Spark jobs: minutes on two busy cores (the default 300 s guards hangs).
@pytest.mark.timeout(900)
def test_databricks_benchmark_tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import databricks

    monkeypatch.setenv("LAKEHOUSE_ENV", "databricks")
    results = databricks.main(["--tiny"])
    assert results["gold_rows"]["sensor_hourly_stats"] > 0  # the same on both (checked inside)
    assert results["spark_gold_seconds"][0] > 0 and results["duckdb_gold_seconds"][0] > 0
    # A 70-hour backfill is one Databricks job run, like one hour.
    assert results["api_calls"]["hourly_run"]["job_runs"] == 1
    assert results["api_calls"]["backfill_70h"]["job_runs"] == 1
    assert results["api_calls"]["backfill_70h"]["by_route"]["POST /api/2.2/jobs/runs/submit"] == 1
