"""Preview before turning a source on: what would load, and nothing written or moved."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg

from orchestration.bronze.assets import build_bronze_asset
from orchestration.defs import build_definitions
from orchestration.resources import LandingZone
from orchestration.warehouse import Warehouse
from tests.lakehouse import DEV, NOW, engine_resources, hour_key, materialize, put_object, reading


def _preview_metadata(
    defs: dg.Definitions, instance: dg.DagsterInstance, config: dict[str, Any]
) -> dict[str, Any]:
    """`landing_preview_job` run as a user runs it; the metadata of what it found."""
    result = defs.resolve_job_def("landing_preview_job").execute_in_process(
        instance=instance, run_config={"ops": {"preview_landing": {"config": config}}}
    )
    (event,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return dict(event.event_specific_data.metadata)  # type: ignore[union-attr]


def test_preview_reports_what_would_load_and_changes_nothing(
    s3: Any, s3_env: str, bucket_prefix: str, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    landing = LandingZone(bucket_prefix=bucket_prefix, endpoint_url=s3_env)
    raw = landing.bucket("raw")
    first, second, third = (NOW - timedelta(hours=h) for h in (3, 2, 1))
    put_object(s3, raw, first, [reading(i, first) for i in range(1, 6)])
    warehouse = Warehouse(database_path=str(tmp_path / "w.duckdb"))
    materialize(build_bronze_asset("raw", DEV), hour_key(first),
                {"landing": landing, **engine_resources(warehouse)}, instance)  # fmt: skip
    put_object(s3, raw, second, [reading(i, second, co2_ppm=400.0) for i in range(6, 9)], node="b")
    put_object(s3, raw, second, [reading(i, second, temperature="hot") for i in (9, 10)], node="c")
    put_object(s3, raw, third, [reading(i, third) for i in range(11, 15)], node="d")

    before = hashlib.sha256((tmp_path / "w.duckdb").read_bytes()).hexdigest()
    listing = sorted((o["Key"], o["ETag"]) for o in s3.list_objects_v2(Bucket=raw)["Contents"])
    materializations = len(
        instance.fetch_materializations(dg.AssetKey(["bronze", "raw"]), 100).records
    )

    defs = build_definitions({"landing": landing, "warehouse": warehouse})
    config = {"scenario": "raw", "start_hour": hour_key(first), "end_hour": hour_key(third),
              "sample_size": 10}  # fmt: skip
    metadata = _preview_metadata(defs, instance, config)
    summary = metadata["summary"].value
    assert summary["hours_to_request"] == 3 and summary["objects"] == 4
    assert summary["estimated_rows"] == 14 and summary["bytes"] > 0
    assert summary["estimated_load_seconds"] >= 0 and summary["estimated_s3_request_cost_usd"] > 0
    assert summary["new_columns"] == {"co2_ppm": "double"}
    assert set(summary["retyped_columns"]) == {"temperature"}
    modes = summary["schema_modes"]
    assert modes["addNewColumns"].startswith("adds co2_ppm") and "quarantined" in modes["none"]
    assert "co2_ppm" in modes["rescue"] and modes["failOnNewColumns"].startswith("the run fails")
    assert isinstance(metadata["first_rows"], dg.TableMetadataValue)
    assert metadata["first_rows"].records

    # Nothing written, nothing moved.
    assert hashlib.sha256((tmp_path / "w.duckdb").read_bytes()).hexdigest() == before
    assert sorted((o["Key"], o["ETag"]) for o in s3.list_objects_v2(Bucket=raw)["Contents"]) == (
        listing
    )
    records = instance.fetch_materializations(dg.AssetKey(["bronze", "raw"]), 100).records
    assert len(records) == materializations
    assert not list(instance.all_instigator_state())  # no sensor cursor was stored

    # The same from the command line; a bad scenario is one line, exit 2.
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "AWS_ENDPOINT_URL": s3_env}
    command = str(Path(sys.executable).with_name("lakehouse-preview"))
    hours = ["--start-hour", hour_key(first), "--end-hour", hour_key(third)]
    cli = [command, "raw", "--bucket-prefix", bucket_prefix, *hours]
    proc = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout[: proc.stdout.rindex("}") + 1])
    assert printed["hours_to_request"] == 3 and printed["bronze"].startswith("no table yet")
    by_prefix = subprocess.run(
        [command, "raw", "--bucket-prefix", bucket_prefix,
         "--prefix", f"year={second:%Y}/month={second:%m}/day={second:%d}/hour={second:%H}/"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert by_prefix.returncode == 0, by_prefix.stderr
    printed = json.loads(by_prefix.stdout[: by_prefix.stdout.rindex("}") + 1])
    assert (printed["hours_to_request"], printed["objects"]) == (1, 2)
    bad = subprocess.run([*cli[:1], "rwa"], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith(
        "lakehouse-preview: scenario 'rwa' is not one of"
    )


def test_preview_names_the_sampled_objects_bronze_would_quarantine(
    s3: Any, s3_env: str, bucket_prefix: str, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """Hostile objects in the previewed hours: named with bronze's reason, not read whole, and
    the preview of the rest still works."""
    from tests.test_hostile_objects import hostile_objects

    landing = LandingZone(bucket_prefix=bucket_prefix, endpoint_url=s3_env)
    raw = landing.bucket("raw")
    put_object(s3, raw, NOW, [reading(i, NOW) for i in range(1, 6)], node="good")
    expected = hostile_objects(s3, raw)
    warehouse = Warehouse(database_path=str(tmp_path / "w.duckdb"))
    defs = build_definitions({"landing": landing, "warehouse": warehouse})
    config = {"scenario": "raw", "start_hour": hour_key(NOW), "end_hour": hour_key(NOW),
              "sample_size": 20}  # fmt: skip
    summary = _preview_metadata(defs, instance, config)["summary"].value
    named = summary["sampled_objects_quarantined"]
    # Without a bronze table there is no case clash yet; every other kind is named.
    for uri, why in expected.items():
        if "differs only in case" not in why:
            assert why in named.get(uri, ""), (uri, named.get(uri))
    assert summary["objects_sampled"] == 19 and "temperature" in summary["columns"]
