"""Landing objects in S3: listing by hour prefix, pairing data with sidecars, digests."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edge_agent.naming import dagster_partition_key, hour_partition_path

_HOUR = re.compile(r"^year=(\d{4})/month=(\d{2})/day=(\d{2})/hour=(\d{2})/")


@dataclass(frozen=True)
class ListedKey:
    key: str
    etag: str
    size: int


@dataclass(frozen=True)
class LandingObject:
    """A complete upload: the Parquet object and its JSON sidecar are both present."""

    bucket: str
    key: str
    etag: str
    size: int
    sidecar_key: str
    sidecar_etag: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def hour_prefix(hour: datetime) -> str:
    return hour_partition_path(hour) + "/"


def hour_of_key(key: str) -> datetime | None:
    match = _HOUR.match(key)
    if not match:
        return None
    year, month, day, hour = map(int, match.groups())
    return datetime(year, month, day, hour, tzinfo=UTC)


def partition_hour(partition_key: str) -> datetime:
    """'2026-11-23-09:00' -> that UTC hour."""
    return datetime.strptime(partition_key, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)


def hour_key(hour: datetime) -> str:
    return dagster_partition_key(hour)


def list_pages(
    client: Any, bucket: str, prefix: str = "", token: str | None = None, page_size: int = 1000
) -> Iterator[tuple[list[ListedKey], str | None]]:
    """Pages of keys under a prefix, each with the continuation token that follows it."""
    while True:
        params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": page_size}
        if token:
            params["ContinuationToken"] = token
        page = client.list_objects_v2(**params)
        keys = [
            ListedKey(o["Key"], o["ETag"].strip('"'), int(o["Size"]))
            for o in page.get("Contents", [])
        ]
        token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
        yield keys, token
        if token is None:
            return


def complete_objects(bucket: str, keys: Iterable[ListedKey]) -> list[LandingObject]:
    """Data objects whose sidecar exists: the agent writes data first, sidecar last."""
    by_key = {k.key: k for k in keys}
    out = []
    for key, listed in sorted(by_key.items()):
        if not key.endswith(".parquet") or hour_of_key(key) is None:
            continue
        sidecar = by_key.get(key.removesuffix(".parquet") + ".json")
        if sidecar is not None:
            out.append(
                LandingObject(bucket, key, listed.etag, listed.size, sidecar.key, sidecar.etag)
            )
    return out


def list_hour(client: Any, bucket: str, hour: datetime) -> list[LandingObject]:
    keys: list[ListedKey] = []
    for page, _ in list_pages(client, bucket, hour_prefix(hour)):
        keys += page
    return complete_objects(bucket, keys)


def digest(objects: Iterable[LandingObject]) -> str:
    """Changes when an object appears, disappears or is rewritten with other content."""
    h = hashlib.sha256()
    for obj in sorted(objects, key=lambda o: o.key):
        h.update(f"{obj.key}|{obj.etag}|{obj.sidecar_etag}\n".encode())
    return h.hexdigest()[:16]
