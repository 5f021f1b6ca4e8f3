"""Exactly once under real kills and concurrent agents, against a real S3 endpoint."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from edge_agent.batches import CRASHPOINT_ENV
from edge_agent.simulate import SimulationSpec, simulate
from tests.conftest import bucket, landed_ids, list_keys, run_agent, source_ids, upload


def _assert_exactly_once(s3: Any, db: Path, prefix: str) -> None:
    data, rejected = landed_ids(s3, bucket(prefix, "raw"))
    assert not rejected
    assert set(data) == source_ids(db), "every source row lands"
    duplicates = {i: n for i, n in data.items() if n > 1}
    assert not duplicates, f"rows uploaded twice: {sorted(duplicates)[:10]}"


@pytest.mark.parametrize(
    "point", ["before_upload", "between_data_and_metadata", "before_watermark"]
)
def test_killed_at_each_point_then_restarted_uploads_every_row_once(
    point: str, s3: Any, node_db: Path, bucket_prefix: str, agent_env: dict[str, str]
) -> None:
    crashed = upload(
        node_db, bucket_prefix, {**agent_env, CRASHPOINT_ENV: point}, "--batch-rows", "400",
        check=False,
    )  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL
    status = run_agent("status", "--db", str(node_db), env=agent_env).stdout
    assert "rows not yet uploaded: 0" not in status  # the watermark did not run ahead

    upload(node_db, bucket_prefix, agent_env, "--batch-rows", "400")
    _assert_exactly_once(s3, node_db, bucket_prefix)
    assert (
        "rows not yet uploaded: 0"
        in run_agent("status", "--db", str(node_db), env=agent_env).stdout
    )


def test_random_kills_during_upload_lose_and_duplicate_nothing(
    s3: Any, tmp_path: Path, bucket_prefix: str, agent_env: dict[str, str]
) -> None:
    """Kill the agent at random moments mid-upload (after it has made progress), restart it."""
    db = tmp_path / "node.db"
    simulate(db, SimulationSpec(rows=60_000, node_id="n1", seed=31))
    rng = random.Random(5)
    command = [
        sys.executable, "-m", "edge_agent", "upload", "--once", "--db", str(db), "--node-id", "n1",
        "--bucket-prefix", bucket_prefix, "--batch-rows", "300",
    ]  # fmt: skip
    raw = bucket(bucket_prefix, "raw")
    kills = 0
    for _ in range(5):
        before = len(list_keys(s3, raw))
        agent = subprocess.Popen(command, env=agent_env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while len(list_keys(s3, raw)) == before and agent.poll() is None:
            assert time.monotonic() < deadline, "the agent made no progress"
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.4))
        if agent.poll() is None:
            agent.send_signal(signal.SIGKILL)
            kills += 1
        agent.wait(timeout=30)
    assert kills >= 3
    upload(db, bucket_prefix, agent_env, "--batch-rows", "300")
    _assert_exactly_once(s3, db, bucket_prefix)


def test_two_agents_on_one_database_never_upload_a_row_twice(
    s3: Any, tmp_path: Path, bucket_prefix: str, agent_env: dict[str, str]
) -> None:
    db = tmp_path / "node.db"
    simulate(db, SimulationSpec(rows=20_000, node_id="n1", seed=32))
    command = [
        sys.executable, "-m", "edge_agent", "upload", "--once", "--db", str(db), "--node-id", "n1",
        "--bucket-prefix", bucket_prefix, "--batch-rows", "500", "--workers", "2",
    ]  # fmt: skip
    agents = [
        subprocess.Popen(command, env=agent_env, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [agent.communicate(timeout=120)[1] for agent in agents]
    assert [a.returncode for a in agents] == [0, 0], outputs
    _assert_exactly_once(s3, db, bucket_prefix)
    history = run_agent("pipeline", "history", "--db", str(db), env=agent_env).stdout
    assert history.count("success") == 2
