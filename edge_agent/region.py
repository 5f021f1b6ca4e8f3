"""Which AWS region this node is in: explicit, environment, EC2 instance metadata, default."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping

from edge_agent.contract import validate_region


def instance_metadata_region(endpoint: str, timeout: float) -> str | None:
    """IMDSv2: a session token first, then the placement region; None if not on EC2."""
    try:
        token_request = urllib.request.Request(  # noqa: S310 - fixed metadata endpoint
            f"{endpoint}/latest/api/token",
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
        )
        with urllib.request.urlopen(token_request, timeout=timeout) as response:  # noqa: S310
            token = response.read().decode()
        region_request = urllib.request.Request(  # noqa: S310
            f"{endpoint}/latest/meta-data/placement/region",
            headers={"X-aws-ec2-metadata-token": token},
        )
        with urllib.request.urlopen(region_request, timeout=timeout) as response:  # noqa: S310
            return response.read().decode().strip() or None
    except (urllib.error.URLError, TimeoutError, OSError, ValueError):
        return None


def detect_region(
    explicit: str | None,
    env: Mapping[str, str],
    imds_endpoint: str,
    imds_timeout: float,
    default: str,
) -> tuple[str, str]:
    """(region, where it came from)."""
    if explicit:
        return validate_region(explicit), "command line"
    for variable in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if env.get(variable):
            return validate_region(env[variable]), variable
    if env.get("AWS_EC2_METADATA_DISABLED", "").lower() != "true":
        region = instance_metadata_region(imds_endpoint, imds_timeout)
        if region:
            return validate_region(region), "EC2 instance metadata"
    return validate_region(default), "default"
