"""S3 access for the agent: credentials in the documented order, puts, and landing buckets."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from edge_agent.errors import StorageError
from edge_agent.secrets import redact_url

_REFUSED = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AllAccessDisabled",
}


def s3_session(
    region: str,
    env: Mapping[str, str] | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
) -> tuple[boto3.Session, str]:
    """A session and a label for where its credentials come from (never the credentials).

    Order: a session token from the environment, then long-lived keys from the agent's own
    configuration, then boto3's default chain (env keys, profiles, container or instance role).
    """
    env = os.environ if env is None else env
    token = env.get("AWS_SESSION_TOKEN")
    if token and env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        session = boto3.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=token,
            region_name=region,
        )
        return session, "temporary session credentials from the environment"
    if access_key_id and secret_access_key:
        session = boto3.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            region_name=region,
        )
        return session, "long-lived keys from the agent configuration"
    return boto3.Session(region_name=region), "the default AWS credential chain"


def s3_client(session: boto3.Session, endpoint_url: str | None, pool: int = 10) -> Any:
    config = Config(
        connect_timeout=3,
        read_timeout=60,
        retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=pool,
        s3={"addressing_style": "path"} if endpoint_url else None,
        request_checksum_calculation="when_required",
    )
    return session.client("s3", endpoint_url=endpoint_url, config=config)


def describe_failure(exc: Exception, bucket: str, endpoint: str | None) -> StorageError:
    """Turn a botocore failure into a one-line error naming what the user must fix."""
    where = redact_url(endpoint) if endpoint else "AWS S3"
    if isinstance(exc, EndpointConnectionError) or (
        isinstance(exc, BotoCoreError) and "connect" in type(exc).__name__.lower()
    ):
        return StorageError(f"S3 endpoint {where} is unreachable ({type(exc).__name__})")
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchBucket", "404", "NotFound"):
            return StorageError(
                f"bucket {bucket} does not exist at {where}: create it with "
                "'edge-agent buckets create'"
            )
        if code in _REFUSED or code == "403":
            return StorageError(f"S3 at {where} refused access to bucket {bucket} ({code})")
        return StorageError(f"S3 at {where} failed for bucket {bucket}: {code or exc}")
    return StorageError(f"S3 at {where} failed for bucket {bucket}: {type(exc).__name__}")


@dataclass(frozen=True)
class StoredObject:
    bucket: str
    key: str
    size: int
    sha256: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


class ObjectStore:
    """Puts whole objects; a retry with the same key overwrites instead of duplicating."""

    def __init__(self, client: Any, endpoint_url: str | None) -> None:
        self.client = client
        self.endpoint_url = endpoint_url
        self._checked: set[str] = set()

    def check_bucket(self, bucket: str) -> None:
        if bucket in self._checked:
            return
        try:
            self.client.head_bucket(Bucket=bucket)
        except (ClientError, BotoCoreError) as exc:
            raise describe_failure(exc, bucket, self.endpoint_url) from exc
        self._checked.add(bucket)

    def bucket_exists(self, bucket: str) -> bool:
        """False only when S3 says the bucket does not exist; other failures raise."""
        return bucket in self._checked or _bucket_exists(self.client, bucket)

    def put(self, bucket: str, key: str, body: bytes, content_type: str) -> StoredObject:
        digest = hashlib.sha256(body)
        try:
            self.client.put_object(
                Bucket=bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                # S3 verifies this on arrival, so a corrupted transfer is refused, not stored.
                ChecksumSHA256=base64.b64encode(digest.digest()).decode(),
            )
        except (ClientError, BotoCoreError) as exc:
            raise describe_failure(exc, bucket, self.endpoint_url) from exc
        return StoredObject(bucket, key, len(body), digest.hexdigest())


@dataclass(frozen=True)
class BucketPolicy:
    """How landing buckets are configured (as the original bucket scripts did)."""

    infrequent_access_after_days: int = 30
    archive_after_days: int = 90
    noncurrent_versions_expire_after_days: int = 30


def _bucket_exists(client: Any, name: str) -> bool:
    # Asked first because us-east-1 answers 200 to creating a bucket you already own.
    try:
        client.head_bucket(Bucket=name)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code", "") in ("404", "NoSuchBucket", "NotFound"):
            return False
        raise describe_failure(exc, name, client.meta.endpoint_url) from exc
    except BotoCoreError as exc:
        raise describe_failure(exc, name, client.meta.endpoint_url) from exc
    return True


def _create_bucket(client: Any, name: str, region: str) -> str:
    params: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        params["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        client.create_bucket(**params)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code", "") == "BucketAlreadyOwnedByYou":
            return "existing"  # created by someone else between our check and now
        raise describe_failure(exc, name, client.meta.endpoint_url) from exc
    except BotoCoreError as exc:
        raise describe_failure(exc, name, client.meta.endpoint_url) from exc
    return "created"


def ensure_bucket(client: Any, name: str, region: str, tiering: bool, policy: BucketPolicy) -> str:
    """Create (or adopt) a bucket and apply versioning, encryption and lifecycle; idempotent."""
    state = "existing" if _bucket_exists(client, name) else _create_bucket(client, name, region)
    rules: list[dict[str, Any]] = [
        {
            "ID": "expire-noncurrent-versions",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "NoncurrentVersionExpiration": {
                "NoncurrentDays": policy.noncurrent_versions_expire_after_days
            },
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
        }
    ]
    if tiering:
        rules.append(
            {
                "ID": "tier-raw-data",
                "Status": "Enabled",
                "Filter": {"Prefix": ""},
                "Transitions": [
                    {"Days": policy.infrequent_access_after_days, "StorageClass": "STANDARD_IA"},
                    {"Days": policy.archive_after_days, "StorageClass": "GLACIER_IR"},
                ],
            }
        )
    try:
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        client.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        client.put_public_access_block(
            Bucket=name,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        client.put_bucket_lifecycle_configuration(
            Bucket=name, LifecycleConfiguration={"Rules": rules}
        )
    except (ClientError, BotoCoreError) as exc:
        raise describe_failure(exc, name, client.meta.endpoint_url) from exc
    return state


def ensure_buckets(
    client: Any, buckets: Iterable[tuple[str, str, bool]], policy: BucketPolicy
) -> list[tuple[str, str]]:
    """(name, region, tiering) for each bucket -> (name, 'created' | 'existing')."""
    return [
        (name, ensure_bucket(client, name, region, tiering, policy))
        for name, region, tiering in buckets
    ]
