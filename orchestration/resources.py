"""Typed resources shared by the code locations."""

from __future__ import annotations

import os
from typing import Any

import boto3
import dagster as dg
from botocore.config import Config

from edge_agent.contract import SCENARIOS, landing_bucket_for
from orchestration.settings import environment_settings


class LandingZone(dg.ConfigurableResource):
    """The S3 landing buckets edge agents write to: `{prefix}-databricks-{scenario}-{region}`."""

    bucket_prefix: str = "edge"
    endpoint_url: str | None = None  # S3-compatible endpoint; AWS_ENDPOINT_URL when unset

    @property
    def lakehouse_region(self) -> str:
        """Region of the scenario buckets (the environment's, environments.yaml)."""
        return environment_settings().lakehouse_region

    @property
    def regional_regions(self) -> tuple[str, ...]:
        """Regions with a regional bucket (the environment's, environments.yaml)."""
        return environment_settings().regional_regions

    def resolved_endpoint(self) -> str | None:
        return (
            self.endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
        )

    def bucket(self, scenario: str, region: str | None = None) -> str:
        if scenario == "regional":
            return landing_bucket_for(scenario, self.bucket_prefix, region or self.lakehouse_region)
        return landing_bucket_for(scenario, self.bucket_prefix, self.lakehouse_region)

    def buckets(self) -> dict[str, list[str]]:
        """Every landing bucket, by scenario (regional: one per configured region)."""
        out = {s: [self.bucket(s)] for s in SCENARIOS if s != "regional"}
        out["regional"] = [self.bucket("regional", r) for r in self.regional_regions]
        return out

    def client(self) -> Any:
        endpoint = self.resolved_endpoint()
        config = Config(
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": "path"} if endpoint else None,
        )
        return boto3.client(
            "s3", endpoint_url=endpoint, region_name=self.lakehouse_region, config=config
        )
