"""Invalid configuration fails at once, in one sentence, and is never retried (issue 9.9)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from orchestration.bronze.assets import build_bronze_asset
from orchestration.engines.duckdb_engine import DuckDBEngine
from orchestration.lakebase.postgres import Lakebase
from orchestration.lakebase.workload import WorkloadError, load_workload
from orchestration.resources import LandingZone
from orchestration.settings import ConfigurationError, load_environments
from orchestration.warehouse import Warehouse
from tests.lakehouse import DEV, NOW, hour_key

ROOT = Path(__file__).resolve().parents[1]


def test_an_unknown_environment_fails_dg_check_defs_in_one_sentence(
    tmp_path: Path,
) -> None:
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("dg")), "check", "defs"],
        cwd=ROOT, env={**os.environ, "DAGSTER_HOME": str(tmp_path), "LAKEHOUSE_ENV": "nonsense"},
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "LAKEHOUSE_ENV='nonsense' is not one of dev, staging, prod" in proc.stdout + proc.stderr


def test_the_demo_refuses_an_unknown_environment_with_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("lakehouse-demo"))],
        cwd=tmp_path, env={**os.environ, "DAGSTER_HOME": str(tmp_path), "LAKEHOUSE_ENV": "prdo"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr  # (Dagster's BetaWarnings aside: issue 12)
    assert proc.stderr.strip().splitlines()[-1] == (
        "lakehouse-demo: LAKEHOUSE_ENV='prdo' is not one of dev, staging, prod, databricks, "
        "databricks-classic, live "
        "(defined in environments.yaml)"
    )


def test_a_non_numeric_environment_setting_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "environments.yaml"
    path.write_text(
        "dev:\n  catalog: lakehouse\n  schema: dev\n  max_files_per_run: lots\n"
        "  target_file_size_mb: 64\n  sensor_lookback_hours: 3\n  full_scan_interval_hours: 6\n"
        "  max_keys_per_tick: 10000\n  silent_after_hours: 2\n"
    )
    with pytest.raises(ConfigurationError) as caught:
        load_environments(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: dev.max_files_per_run: Input should be a valid integer")
    assert "\n" not in message


def test_a_malformed_workload_names_file_and_field_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "workload.yaml"
    path.write_text(
        "database_instance:\n  reads_per_second: fast\n"
        "delta_synchronization:\n  tables_to_sync:\n    - name: gold_x\n      primary_keys: []\n"
    )
    with pytest.raises(WorkloadError) as caught:
        load_workload(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: database_instance.reads_per_second: Input should be")
    assert "tables_to_sync.0.primary_keys: List should have at least 1 item" in message
    path.write_text("database_instance: [\n")
    with pytest.raises(WorkloadError, match=r"not valid YAML") as caught:
        load_workload(path)
    assert "\n" not in str(caught.value)


def test_a_configuration_error_in_a_run_fails_once_and_is_not_retried(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """bronze has a retry policy (for S3 and lock hiccups); a bad environment is not one (here
    an engine configured, by hand, for an environment environments.yaml does not have)."""
    warehouse = Warehouse(database_path=str(tmp_path / "w.duckdb"))
    engine = DuckDBEngine(environment="qa", catalog="lakehouse", schema_name="qa",
                          regions=["us-east-1"])  # fmt: skip
    result = dg.materialize(
        [build_bronze_asset("raw", DEV)],
        partition_key=hour_key(NOW),
        resources={
            "landing": LandingZone(bucket_prefix="cfg"),
            "warehouse": warehouse,
            "lakebase": Lakebase(),
            "engine": engine,
        },
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    events: list[Any] = result.all_events
    assert not [e for e in events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    failure = result.get_step_failure_events()[0].step_failure_data
    assert failure.error is not None
    assert "environment 'qa' is not one of dev, staging, prod" in failure.error.message


def test_regions_have_one_owner_the_environment() -> None:
    """Regional partitions, the landing buckets and the sensors' regions are the same list."""
    from orchestration.settings import environment_settings

    settings = environment_settings("dev")
    regions = settings.regional_regions
    region_dimension = next(
        d for d in DEV.regional.partitions_defs if d.name == "region"
    ).partitions_def
    assert tuple(region_dimension.get_partition_keys()) == regions
    landing = LandingZone.for_environment(settings, bucket_prefix="own")
    assert landing.buckets()["regional"] == [landing.bucket("regional", r) for r in regions]
