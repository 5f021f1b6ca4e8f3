"""Benchmarks in their tiny mode, so they never rot (no timing is asserted here)."""

from __future__ import annotations

from pathlib import Path

from bench import edge_upload


def test_edge_upload_benchmark_tiny(tmp_path: Path) -> None:
    results = edge_upload.main(["--tiny", "--workdir", str(tmp_path)])
    for key in ("agent_rows_per_s", "naive_rows_per_s", "ceiling_rows_per_s",
                "agent_vs_naive", "agent_vs_ceiling", "agent_peak_rss_mb_big_backlog"):  # fmt: skip
        assert results[key] > 0, key
