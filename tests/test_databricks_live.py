"""Opt-in: one hour end to end on a real Databricks workspace (the only test that may skip).

Needs DATABRICKS_HOST and DATABRICKS_TOKEN (a workspace with Unity Catalog, serverless jobs and
the Volume named in environments.yaml), AWS credentials for real landing buckets, and
LAKEHOUSE_LIVE_BUCKET_PREFIX naming those buckets' prefix ({prefix}-databricks-raw-<region>).
The workspace reads the buckets through the external locations `databricks/unity_catalog`
creates (its storage credential must exist).

    DATABRICKS_HOST=... DATABRICKS_TOKEN=... LAKEHOUSE_LIVE_BUCKET_PREFIX=... \\
        uv run --group databricks pytest tests/test_databricks_live.py
"""

from __future__ import annotations

import os
from typing import Any

import boto3
import dagster as dg
import pytest

from orchestration.bronze.assets import build_bronze_asset
from orchestration.catalog.assets import unity_catalog_asset
from orchestration.databricks.workspace import databricks_resource
from orchestration.gold.assets import build_hourly_gold
from orchestration.resources import LandingZone
from orchestration.settings import environment_settings
from orchestration.silver.assets import silver_asset
from orchestration.transforms.gold import GOLD_TABLES
from tests.lakehouse import NOW, databricks_resources, environment, hour_key, put_object, reading

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not all(
            os.environ.get(v)
            for v in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "LAKEHOUSE_LIVE_BUCKET_PREFIX")
        ),
        reason="live Databricks test: set DATABRICKS_HOST, DATABRICKS_TOKEN and "
        "LAKEHOUSE_LIVE_BUCKET_PREFIX to run it",
    ),
]


def test_one_hour_end_to_end_on_a_real_workspace() -> None:
    env = environment("databricks")
    landing = LandingZone(bucket_prefix=os.environ["LAKEHOUSE_LIVE_BUCKET_PREFIX"])
    s3: Any = boto3.client("s3", region_name=landing.lakehouse_region)
    rows = [reading(i, NOW) for i in range(1, 101)]
    put_object(s3, landing.bucket("raw"), NOW, rows, node="live-test")
    databricks = databricks_resource(environment_settings("databricks"))
    resources = databricks_resources(databricks, landing)
    gold_asset = build_hourly_gold(GOLD_TABLES[0], env)
    with dg.instance_for_test() as instance:
        dg.materialize([unity_catalog_asset(env)], resources=resources, instance=instance)
        for step in (build_bronze_asset("raw", env), silver_asset(env), gold_asset):
            result = dg.materialize([step], resources=resources, instance=instance,
                                    partition_key=hour_key(NOW))  # fmt: skip
            assert result.success
        gold = result.asset_materializations_for_node(gold_asset.op.name)[0]
        assert gold.metadata["dagster/row_count"].value > 0
        assert gold.metadata["databricks_run_url"].value.startswith("https://")
