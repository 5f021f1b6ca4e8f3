"""The Databricks job runs exactly the project's code with pinned dependencies (issue 17.13):
the job script in the Volume is checked by its hash before each run and replaced when it
differs, and the serverless environment installs the versions uv.lock pins. Through the
loopback stand-in of the REST API, with the real databricks-sdk and Pipes client."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from orchestration.bronze.assets import build_bronze_asset
from orchestration.databricks.workspace import JOB_SCRIPT, Databricks, job_script_path
from orchestration.resources import LandingZone
from orchestration.settings import environment_settings
from tests.conftest import bucket
from tests.databricks_standin.server import Workspace, serve
from tests.lakehouse import NOW, databricks_resources, environment, hour_key, put_object, reading

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "standin-script-token"  # the stand-in's own, for this test only


def _locked_version(package: str) -> str:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    (version,) = {p["version"] for p in lock["package"] if p["name"] == package}
    return version


@pytest.fixture
def standin(tmp_path: Path, s3_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    task_env = {k: os.environ[k] for k in os.environ if k.startswith("AWS_")}
    with serve(tmp_path / "workspace", TOKEN, task_env) as workspace:
        yield workspace


def test_a_tampered_job_script_is_replaced_and_the_environment_is_pinned(
    s3: Any, bucket_prefix: str, s3_env: str, standin: Workspace, instance: dg.DagsterInstance
) -> None:
    put_object(s3, bucket(bucket_prefix, "raw"), NOW, [reading(i, NOW) for i in range(1, 6)])
    volume = environment_settings("databricks").databricks.volume  # type: ignore[union-attr]
    remote = standin.local(job_script_path(volume))
    remote.parent.mkdir(parents=True, exist_ok=True)
    # Someone with write access to the Volume swapped the code under the expected name.
    remote.write_text('raise SystemExit("tampered job script ran")\n')
    res = databricks_resources(
        Databricks(host=standin.host, token=TOKEN, message_interval_seconds=0.5,
                   poll_interval_seconds=0.5),
        LandingZone(bucket_prefix=bucket_prefix, endpoint_url=s3_env),
    )  # fmt: skip
    bronze = build_bronze_asset("raw", environment("databricks"))

    dg.materialize([bronze], resources=res, instance=instance, partition_key=hour_key(NOW))

    (run,) = standin.runs.values()
    assert run.result == "SUCCESS", run.message  # the project's code ran, not the swapped one
    assert remote.read_bytes() == JOB_SCRIPT.read_bytes()  # replaced before the run
    assert run.task["spark_python_task"]["python_file"] == job_script_path(volume)
    (job_environment,) = run.environments
    dependencies = job_environment["spec"]["dependencies"]
    assert f"boto3=={_locked_version('boto3')}" in dependencies
    assert f"dagster-pipes=={_locked_version('dagster-pipes')}" in dependencies
    assert all("==" in d for d in dependencies), dependencies  # nothing floats between runs
