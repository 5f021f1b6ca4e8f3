"""The load tool against a real PostgreSQL: weighted mix, concurrent clients, percentiles."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from orchestration.lakebase.load import LoadMixError, load_mix, percentile, run_load


def connector(dsn: str) -> Callable[[], psycopg.Connection]:
    return lambda: psycopg.connect(dsn)


@pytest.fixture
def readings(lakebase_db: str) -> str:
    with psycopg.connect(lakebase_db) as conn:
        conn.execute("CREATE SCHEMA app")
        conn.execute("CREATE TABLE app.readings AS SELECT i, i * 0.5 AS value "
                     "FROM generate_series(1, 1000) i")  # fmt: skip
        conn.commit()
    return lakebase_db


def test_clients_run_the_weighted_mix_and_report_percentiles(readings: str) -> None:
    queries = {
        "point": "SELECT value FROM readings WHERE i = 7",
        "scan": "SELECT count(*), avg(value) FROM readings",
    }
    result = run_load(connector(readings), queries, {"point": 4, "scan": 1}, "app",
                      clients=3, seconds=0.5)  # fmt: skip
    by_name = {q.name: q for q in result.per_query}
    assert result.errors == 0 and result.queries > 50
    assert len(by_name["point"].latencies_ms) > 2 * len(by_name["scan"].latencies_ms) > 0
    p50, p95, p99 = (result.percentile(p) for p in (50, 95, 99))
    assert p50 is not None and p95 is not None and p99 is not None
    assert 0 < p50 <= p95 <= p99 <= max(result.latencies_ms)
    assert result.qps == pytest.approx(result.queries / result.seconds)
    assert 0.5 <= result.seconds < 5
    document = result.as_dict()
    assert document["queries"] == result.queries and document["per_query"][0]["p95_ms"] > 0
    assert "| **all** |" in result.markdown()


def test_failing_queries_are_counted_and_the_session_is_read_only(readings: str) -> None:
    queries = {
        "good": "SELECT count(*) FROM readings",
        "missing": "SELECT * FROM no_such_table",
        "write": "DELETE FROM readings",
    }
    result = run_load(connector(readings), queries, {"good": 1, "missing": 1, "write": 1}, "app",
                      clients=2, seconds=0.3)  # fmt: skip
    by_name = {q.name: q for q in result.per_query}
    assert by_name["good"].errors == 0 and by_name["good"].latencies_ms
    assert by_name["missing"].errors > 0 and "no_such_table" in by_name["missing"].first_error
    assert by_name["write"].errors > 0 and "read-only" in by_name["write"].first_error
    with psycopg.connect(readings) as conn:
        assert conn.execute("SELECT count(*) FROM app.readings").fetchone() == (1000,)


def test_a_client_that_cannot_connect_fails_the_load(readings: str) -> None:
    def refused() -> psycopg.Connection:
        raise psycopg.OperationalError("connection refused")

    with pytest.raises(RuntimeError, match=r"could not connect: .*connection refused"):
        run_load(refused, {"q": "SELECT 1"}, {"q": 1}, "app", clients=2, seconds=0.1)


def test_the_mix_file_is_checked_against_the_queries(tmp_path: Path) -> None:
    mix = tmp_path / "mix.yaml"
    mix.write_text("fleet_status: 3\nsensor_page: 1\n")
    with pytest.raises(LoadMixError, match="no query named 'sensor_page'"):
        load_mix(mix, {"fleet_status"})
    mix.write_text("fleet_status: many\n")
    with pytest.raises(LoadMixError, match="whole number"):
        load_mix(mix, {"fleet_status"})
    mix.write_text("fleet_status: 0\n")
    with pytest.raises(LoadMixError, match="nothing to run"):
        load_mix(mix, {"fleet_status"})
    mix.write_text("fleet_status: 3\nsilent: 0\n")
    assert load_mix(mix, {"fleet_status", "silent"}) == {"fleet_status": 3}


def test_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([3.0], 95) == 3.0 and percentile([], 95) is None
