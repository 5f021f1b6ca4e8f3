"""`edge-agent buckets create`: idempotent, versioned, encrypted, raw data tiered."""

from __future__ import annotations

from typing import Any

from tests.conftest import run_agent


def test_buckets_create_is_idempotent_and_configures_each_bucket(
    s3: Any, agent_env: dict[str, str]
) -> None:
    args = ("buckets", "create", "--bucket-prefix", "acme", "--regions", "eu-west-1,us-west-2")
    first = run_agent(*args, env=agent_env).stdout.splitlines()
    second = run_agent(*args, env=agent_env).stdout.splitlines()
    names = [line.split("s3://")[1] for line in first]
    assert names == [
        "acme-databricks-raw-us-east-1",
        "acme-databricks-schematized-us-east-1",
        "acme-databricks-filtered-us-east-1",
        "acme-databricks-emergency-us-east-1",
        "acme-databricks-regional-eu-west-1",
        "acme-databricks-regional-us-west-2",
    ]
    assert all(line.startswith("created") for line in first)
    assert all(line.startswith("existing") for line in second)
    for name in names:
        assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
        rule = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"][
            0
        ]
        assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]}
        assert "expire-noncurrent-versions" in rules
        tiered = "tier-raw-data" in rules
        assert tiered == ("-raw-" in name or "-regional-" in name)
        if tiered:
            classes = [t["StorageClass"] for t in rules["tier-raw-data"]["Transitions"]]
            assert classes == ["STANDARD_IA", "GLACIER_IR"]
    assert s3.get_bucket_location(Bucket=names[4])["LocationConstraint"] == "eu-west-1"


def test_invalid_prefix_or_region_is_refused(agent_env: dict[str, str]) -> None:
    proc = run_agent("buckets", "create", "--bucket-prefix", "UPPER", env=agent_env, check=False)
    assert proc.returncode == 2 and "bucket prefix 'UPPER' is not valid" in proc.stderr
    proc = run_agent("buckets", "create", "--regions", "moon-1", env=agent_env, check=False)
    assert proc.returncode == 2 and "does not look like an AWS region" in proc.stderr
