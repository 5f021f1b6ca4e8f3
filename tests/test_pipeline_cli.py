"""`edge-agent pipeline`: the pipeline type lives in the node database, changed atomically."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from edge_agent.contract import SCENARIOS
from tests.conftest import run_agent


def test_get_shows_the_default_until_set(node_db: Path, agent_env: dict[str, str]) -> None:
    out = run_agent("pipeline", "get", "--db", str(node_db), env=agent_env).stdout
    assert out.strip() == "raw (default; never set)"
    run_agent(
        "pipeline", "set", "filtered", "--by", "ops-team", "--db", str(node_db), env=agent_env
    )
    out = run_agent("pipeline", "get", "--db", str(node_db), env=agent_env).stdout
    assert out.startswith("filtered (set ") and "by ops-team" in out


def test_invalid_type_is_refused_with_exit_2_and_nothing_changes(
    node_db: Path, agent_env: dict[str, str]
) -> None:
    run_agent("pipeline", "set", "emergency", "--db", str(node_db), env=agent_env)
    before = node_db.read_bytes()
    proc = run_agent("pipeline", "set", "turbo", "--db", str(node_db), env=agent_env, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "edge-agent: error: unknown pipeline type 'turbo': choose one of "
        "raw, schematized, filtered, emergency, regional"
    ]
    assert "emergency" in run_agent("pipeline", "get", "--db", str(node_db), env=agent_env).stdout
    assert node_db.read_bytes() == before


def test_the_database_refuses_an_invalid_type_written_behind_the_agents_back(
    node_db: Path, agent_env: dict[str, str]
) -> None:
    run_agent("pipeline", "set", "raw", "--db", str(node_db), env=agent_env)
    with sqlite3.connect(node_db) as conn:
        try:
            conn.execute("UPDATE pipeline_config SET pipeline_type = 'bogus'")
        except sqlite3.IntegrityError:
            pass
        else:
            raise AssertionError("CHECK constraint missing")
        try:
            conn.execute("INSERT INTO pipeline_config VALUES (2, 'raw', 'now', 'someone')")
        except sqlite3.IntegrityError:
            pass
        else:
            raise AssertionError("single-row constraint missing")


def test_concurrent_changes_never_corrupt_the_setting(
    node_db: Path, agent_env: dict[str, str]
) -> None:
    """Eight processes each change the type ten times at once; every change commits whole."""
    script = (
        "import sys\n"
        "from edge_agent.cli import main\n"
        "for i in range(10):\n"
        "    t = sys.argv[1]\n"
        "    args = ['-q', 'pipeline', 'set', t, '--by', f'{t}-{i}', '--db', sys.argv[2]]\n"
        "    assert main(args) == 0\n"
    )
    types = [SCENARIOS[i % len(SCENARIOS)] for i in range(8)]
    procs = [
        subprocess.Popen([sys.executable, "-c", script, t, str(node_db)], env=agent_env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for t in types
    ]  # fmt: skip
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, errors
    with sqlite3.connect(node_db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = conn.execute("SELECT pipeline_type, updated_by FROM pipeline_config").fetchall()
    assert len(rows) == 1
    pipeline_type, updated_by = rows[0]
    assert updated_by.startswith(pipeline_type + "-")  # type and author from the same change


def test_history_lists_executions_newest_first(
    node_db: Path, bucket_prefix: str, agent_env: dict[str, str]
) -> None:
    from tests.conftest import upload

    upload(node_db, bucket_prefix, agent_env)
    run_agent("pipeline", "set", "emergency", "--db", str(node_db), env=agent_env)
    upload(node_db, bucket_prefix, agent_env)
    lines = run_agent(
        "pipeline", "history", "--limit", "5", "--db", str(node_db), env=agent_env
    ).stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("#2 ") and "emergency" in lines[0] and "read=0" in lines[0]
    assert lines[1].startswith("#1 ") and "raw" in lines[1] and "uploaded=3000" in lines[1]
