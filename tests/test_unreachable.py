"""S3 missing or refusing credentials: one sentence saying what is missing and how to provide
it, in the sensor tick, in the run and in the UI's run page; never a stack trace alone."""

from __future__ import annotations

import socket
from pathlib import Path

import dagster as dg
import pytest

from orchestration.bronze.assets import build_bronze_asset
from orchestration.bronze.sensors import build_landing_sensor
from orchestration.reports.assets import pipeline_cost
from orchestration.resources import LandingZone
from orchestration.warehouse import Warehouse
from tests.lakehouse import DEV, NOW, engine_resources, hour_key


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def nowhere(monkeypatch: pytest.MonkeyPatch) -> LandingZone:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    return LandingZone(bucket_prefix="edge", endpoint_url=f"http://127.0.0.1:{_closed_port()}")


def test_a_sensor_tick_without_s3_skips_with_one_sentence(
    nowhere: LandingZone, instance: dg.DagsterInstance
) -> None:
    sensor = build_landing_sensor("raw", DEV)
    result = sensor(dg.build_sensor_context(instance=instance, resources={"landing": nowhere}))
    reason = str(result.skip_reason)
    assert not result.run_requests
    assert "is not reachable: start it, or point AWS_ENDPOINT_URL" in reason
    assert "\n" not in reason and "Traceback" not in reason


def test_a_sensor_tick_without_credentials_says_which_are_missing(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance metadata here
    landing = LandingZone(bucket_prefix="edge", endpoint_url=f"http://127.0.0.1:{_closed_port()}")
    result = build_landing_sensor("raw", DEV)(
        dg.build_sensor_context(instance=instance, resources={"landing": landing})
    )
    assert "no credentials for the S3 endpoint" in str(result.skip_reason)
    assert "AWS_ACCESS_KEY_ID" in str(result.skip_reason)


@pytest.mark.parametrize("asset", ["bronze", "pipeline_cost"])
def test_a_run_without_s3_fails_with_one_sentence(
    asset: str, nowhere: LandingZone, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    warehouse = Warehouse(database_path=str(tmp_path / "w.duckdb"))
    resources = {"landing": nowhere, **engine_resources(warehouse)}
    selected = build_bronze_asset("raw", DEV) if asset == "bronze" else pipeline_cost
    result = dg.materialize(
        [selected], resources=resources, instance=instance, raise_on_error=False,
        partition_key=hour_key(NOW) if asset == "bronze" else None,
        tags={"dagster/max_retries": "0"},
    )  # fmt: skip
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    description = failure.step_failure_data.user_failure_data.description  # type: ignore[union-attr]
    assert description.startswith("the S3 endpoint http://127.0.0.1:")
    assert "is not reachable" in description and "\n" not in description
