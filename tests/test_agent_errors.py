"""Bad input: one clear line, a non-zero exit, and nothing uploaded or counted."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from edge_agent.simulate import SimulationSpec, simulate
from tests.conftest import bucket, landed_ids, list_keys, read_parquet, run_agent, upload


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if "error" in line.lower()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def _make_db(path: Path, ddl: list[str]) -> Path:
    with sqlite3.connect(path) as conn:
        for statement in ddl:
            conn.execute(statement)
    return path


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing", "does not exist"),
        ("corrupt", "is not a readable SQLite database"),
        ("no_table", "no sensor table"),
        ("several_tables", "several tables"),
        ("no_timestamp", "no timestamp column"),
        ("no_integer_key", "no INTEGER PRIMARY KEY"),
    ],
)
def test_bad_database_is_a_one_line_error(
    case: str, expected: str, tmp_path: Path, bucket_prefix: str, agent_env: dict[str, str]
) -> None:
    db = tmp_path / "node.db"
    if case == "corrupt":
        db.write_bytes(b"this is not sqlite" * 100)
    elif case == "no_table":
        _make_db(db, ["CREATE TABLE pipeline_config (id INTEGER PRIMARY KEY)"])
    elif case == "several_tables":
        _make_db(db, ["CREATE TABLE a (id INTEGER PRIMARY KEY, timestamp TEXT)",
                      "CREATE TABLE b (id INTEGER PRIMARY KEY, timestamp TEXT)"])  # fmt: skip
    elif case == "no_timestamp":
        _make_db(db, ["CREATE TABLE readings (id INTEGER PRIMARY KEY, value REAL)"])
    elif case == "no_integer_key":
        _make_db(db, ["CREATE TABLE readings (timestamp TEXT, value REAL)"])
    proc = upload(db, bucket_prefix, agent_env, check=False)
    assert proc.returncode != 0
    assert expected in _error_line(proc.stderr)
    if case == "missing":
        assert not db.exists()  # the agent never creates a database


def test_unsafe_node_id_or_prefix_is_refused_before_anything_happens(
    node_db: Path, bucket_prefix: str, agent_env: dict[str, str]
) -> None:
    for args in (
        ["--node-id", "../../etc"],
        ["--node-id", "a/b"],
        ["--bucket-prefix", "Bad_Prefix"],
    ):
        proc = run_agent(
            "upload", "--once", "--db", str(node_db), "--bucket-prefix", bucket_prefix, *args,
            env=agent_env, check=False,
        )  # fmt: skip
        assert proc.returncode == 2
        assert "not" in _error_line(proc.stderr)
    history = run_agent("pipeline", "history", "--db", str(node_db), env=agent_env).stdout
    assert history.strip() == "no executions yet"


def _assert_nothing_counted(db: Path, env: dict[str, str]) -> None:
    status = run_agent("status", "--db", str(db), env=env).stdout
    assert "watermark: 0" in status
    history = run_agent("pipeline", "history", "--db", str(db), env=env).stdout
    assert "failed" in history and "success" not in history


def test_unreachable_s3_fails_fast_and_counts_nothing(
    node_db: Path, agent_env: dict[str, str]
) -> None:
    env = {**agent_env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # nothing listens on port 9
    proc = upload(node_db, "edge", env, check=False)
    assert proc.returncode == 1
    assert "unreachable" in _error_line(proc.stderr)
    _assert_nothing_counted(node_db, agent_env)


def test_missing_bucket_names_the_fix(node_db: Path, agent_env: dict[str, str]) -> None:
    proc = upload(node_db, "nobuckets", agent_env, check=False)
    assert proc.returncode == 1
    line = _error_line(proc.stderr)
    assert "nobuckets-databricks-raw-us-east-1 does not exist" in line
    assert "edge-agent buckets create" in line
    _assert_nothing_counted(node_db, agent_env)


def test_refusing_s3_is_reported_without_leaking_credentials(
    tmp_path: Path, node_db: Path, agent_env: dict[str, str]
) -> None:
    """A second moto server with IAM checks on: unknown keys are refused, as by AWS."""
    from orchestration.demo.local_s3 import local_s3_server

    secret = "SuperSecretValue-9f8e7d"
    with local_s3_server({"INITIAL_NO_AUTH_ACTION_COUNT": "0"}) as endpoint:
        env = {
            **agent_env,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_SESSION_TOKEN": "SessionToken-abcdef123456",
        }
        proc = upload(node_db, "edge", env, check=False)
    assert proc.returncode == 1
    line = _error_line(proc.stderr)
    assert "refused" in line
    assert "temporary session credentials" in proc.stderr  # session token preferred
    for value in (secret, "SessionToken-abcdef123456"):
        assert value not in proc.stderr and value not in proc.stdout
    _assert_nothing_counted(node_db, agent_env)


def test_unparsable_timestamps_are_reported_and_the_rest_proceed(
    s3: Any, node_db: Path, bucket_prefix: str, agent_env: dict[str, str]
) -> None:
    with sqlite3.connect(node_db) as conn:
        conn.execute("UPDATE sensor_readings SET timestamp = 'yesterday-ish' WHERE id IN (5, 6)")
        conn.execute("UPDATE sensor_readings SET timestamp = '2026-13-45T99:00:00' WHERE id = 7")
    proc = upload(node_db, bucket_prefix, agent_env)
    assert "3 rejected" in proc.stderr
    raw = bucket(bucket_prefix, "raw")
    data, rejected = landed_ids(s3, raw)
    assert set(rejected) == {5, 6, 7} and len(data) == 2_997
    key = next(k for k in list_keys(s3, raw, "_rejected/") if k.endswith(".parquet"))
    rows = read_parquet(s3, raw, key).to_pylist()
    assert {r["timestamp"] for r in rows} == {"yesterday-ish", "2026-13-45T99:00:00"}
    assert all(r["_reject_reason"] == "unparsable timestamp in column timestamp" for r in rows)


def test_wrongly_typed_values_are_kept_apart_not_coerced(
    s3: Any, node_db: Path, bucket_prefix: str, agent_env: dict[str, str]
) -> None:
    with sqlite3.connect(node_db) as conn:
        conn.execute("UPDATE sensor_readings SET temperature = 'n/a' WHERE id = 2500")
        conn.execute("UPDATE sensor_readings SET status_code = 1.5 WHERE id = 2501")
    upload(node_db, bucket_prefix, agent_env)
    raw = bucket(bucket_prefix, "raw")
    data, rejected = landed_ids(s3, raw)
    assert set(rejected) == {2500, 2501} and len(data) == 2_998
    key = next(k for k in list_keys(s3, raw, "_rejected/") if k.endswith(".parquet"))
    rows = {int(r["id"]): r for r in read_parquet(s3, raw, key).to_pylist()}
    assert rows[2500]["temperature"] == "n/a"
    assert "temperature" in rows[2500]["_reject_reason"]
    assert "status_code" in rows[2501]["_reject_reason"]


def test_hostile_table_and_column_names_are_quoted(
    s3: Any, tmp_path: Path, bucket_prefix: str, agent_env: dict[str, str]
) -> None:
    db = tmp_path / "node.db"
    table = 'readings"; DROP TABLE x; --'
    _make_db(db, [
        'CREATE TABLE "readings""; DROP TABLE x; --" (id INTEGER PRIMARY KEY AUTOINCREMENT, '
        '"when ""it"" happened" DATETIME, "value; DELETE" REAL)',
    ])  # fmt: skip
    with sqlite3.connect(db) as conn:
        conn.executemany(
            'INSERT INTO "readings""; DROP TABLE x; --" ("when ""it"" happened", "value; DELETE") '
            "VALUES (?, ?)",
            [(f"2026-01-01T00:{m:02d}:00+00:00", float(m)) for m in range(60)],
        )
    upload(db, bucket_prefix, agent_env)
    data, _ = landed_ids(s3, bucket(bucket_prefix, "raw"))
    assert len(data) == 60
    with sqlite3.connect(db) as conn:
        assert conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = ?", (table,)
        ).fetchone()


def test_configured_table_and_timestamp_column(
    s3: Any, tmp_path: Path, bucket_prefix: str, agent_env: dict[str, str]
) -> None:
    db = tmp_path / "node.db"
    simulate(db, SimulationSpec(rows=100, node_id="n1", seed=3))
    _make_db(db, ["CREATE TABLE other (id INTEGER PRIMARY KEY, created_at TEXT, measured TEXT)"])
    proc = upload(db, bucket_prefix, agent_env, check=False)
    assert "several tables" in _error_line(proc.stderr)
    upload(db, bucket_prefix, agent_env, "--table", "sensor_readings")
    assert len(landed_ids(s3, bucket(bucket_prefix, "raw"))[0]) == 100


def test_a_claim_made_under_a_prefix_typo_follows_the_corrected_prefix_exactly_once(
    s3: Any, node_db: Path, bucket_prefix: str, agent_env: dict[str, str]
) -> None:
    from tests.conftest import source_ids

    typo = upload(node_db, bucket_prefix + "x", agent_env, "--batch-rows", "1000", check=False)
    assert typo.returncode == 1 and "does not exist" in typo.stderr
    fixed = upload(node_db, bucket_prefix, agent_env, "--batch-rows", "1000")
    assert "which does not exist and holds none of them" in fixed.stderr
    upload(node_db, bucket_prefix, agent_env, "--batch-rows", "1000")  # again: nothing twice
    data, rejected = landed_ids(s3, bucket(bucket_prefix, "raw"))
    assert set(data) == source_ids(node_db) and max(data.values()) == 1
    assert not rejected
    status = run_agent("status", "--db", str(node_db), env=agent_env).stdout
    assert "rows not yet uploaded: 0" in status
