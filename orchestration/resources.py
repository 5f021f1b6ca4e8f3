"""Typed resources shared by the code locations."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlencode

import boto3
import dagster as dg
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
)
from pydantic import Field

from edge_agent.contract import SCENARIOS, landing_bucket_for
from orchestration.settings import EnvironmentSettings, configured_for


class LandingUnreachableError(dg.Failure):
    """S3 cannot be reached or refuses the credentials: what is missing, in one sentence (a run
    fails with it as its description; a sensor tick skips with it)."""

    def __init__(self, message: str, retryable: bool) -> None:
        # Missing or refused credentials are configuration: a retry cannot fix them.
        super().__init__(description=message, allow_retries=retryable)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _why_unreachable(exc: Exception, endpoint: str | None) -> str | None:
    where = f"the S3 endpoint {endpoint}" if endpoint else "S3"
    if isinstance(exc, NoCredentialsError):
        return (
            f"no credentials for {where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or an "
            "AWS profile); locally, `uv run lakehouse-demo` starts an endpoint with its own"
        )
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
        return (
            f"{where} is not reachable: start it, or point AWS_ENDPOINT_URL (or the landing "
            "resource's endpoint_url) at one that runs"
        )
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"):
            return (
                f"{where} refused the credentials ({code}): check AWS_ACCESS_KEY_ID and its secret"
            )
    return None


class LandingZone(dg.ConfigurableResource):
    """The S3 landing buckets edge agents write to: `{prefix}-databricks-{scenario}-{region}`."""

    bucket_prefix: str = "edge"
    endpoint_url: str | None = None  # S3-compatible endpoint; AWS_ENDPOINT_URL when unset
    lakehouse_region: str = Field(
        default="us-east-1", description="region of the scenario buckets (environments.yaml)"
    )
    regional_regions: list[str] = Field(
        default=["us-east-1", "eu-west-1"],
        description="regions with a regional bucket (environments.yaml)",
    )

    @classmethod
    def for_environment(cls, settings: EnvironmentSettings, **fields: Any) -> LandingZone:
        regions = {
            "lakehouse_region": settings.lakehouse_region,
            "regional_regions": list(settings.regional_regions),
        }
        return configured_for(cls, regions, **fields)

    def resolved_endpoint(self) -> str | None:
        return (
            self.endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
        )

    def browse_url(self, bucket: str, prefix: str = "", region: str | None = None) -> str:
        """A link that opens the objects under `prefix` in a browser: the local endpoint's own
        listing, or the S3 console for AWS (which asks the person to sign in)."""
        endpoint = self.resolved_endpoint()
        query = urlencode({"prefix": prefix} if prefix else {})
        if endpoint:
            return f"{endpoint.rstrip('/')}/{quote(bucket)}" + (f"?{query}" if query else "")
        region = region or self.lakehouse_region
        return (
            f"https://{region}.console.aws.amazon.com/s3/buckets/{quote(bucket)}"
            f"?region={region}" + (f"&{query}" if query else "")
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

    @contextmanager
    def reachable(self) -> Iterator[None]:
        """Turns S3 being unreachable or refusing credentials into one sentence saying what is
        missing (`LandingUnreachableError`); other errors pass through."""
        try:
            yield
        except (BotoCoreError, ClientError) as exc:
            reason = _why_unreachable(exc, self.resolved_endpoint())
            if reason is None:
                raise
            retryable = isinstance(exc, (EndpointConnectionError, ConnectTimeoutError))
            raise LandingUnreachableError(reason, retryable) from None

    def client(self) -> Any:
        endpoint = self.resolved_endpoint()
        config = Config(
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": "path"} if endpoint else None,
        )
        # A session per client: credentials are resolved now, not cached from an earlier call
        # (a long-running daemon sees rotated or newly provided credentials).
        return boto3.session.Session().client(
            "s3", endpoint_url=endpoint, region_name=self.lakehouse_region, config=config
        )
