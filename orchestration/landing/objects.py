"""Landing objects in S3: listing by hour prefix, pairing data with sidecars, digests."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edge_agent.contract import dagster_partition_key, hour_partition_path

_HOUR = re.compile(r"^year=(\d{4})/month=(\d{2})/day=(\d{2})/hour=(\d{2})/")


@dataclass(frozen=True)
class ListedKey:
    key: str
    etag: str
    size: int
    last_modified: datetime | None = None

    @classmethod
    def from_listing(cls, obj: dict[str, Any]) -> ListedKey:
        return cls(obj["Key"], obj["ETag"].strip('"'), int(obj["Size"]), obj.get("LastModified"))


@dataclass(frozen=True)
class LandingObject:
    """A complete upload: the Parquet object and its JSON sidecar are both present."""

    bucket: str
    key: str
    etag: str
    size: int
    sidecar_key: str
    sidecar_etag: str
    sidecar_size: int = 0

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class IncompleteUpload:
    """Half of an upload, past the grace period: a data object without its sidecar (the agent
    died between the two writes and has not redone it) or a sidecar without its data object."""

    bucket: str
    key: str
    missing: str  # "sidecar" | "data object"
    last_modified: datetime | None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def reason(self) -> str:
        written = f", written {self.last_modified:%Y-%m-%d %H:%M} UTC" if self.last_modified else ""
        return f"incomplete upload: no {self.missing}{written}; loaded once it completes"


@dataclass(frozen=True)
class HourListing:
    """One hour prefix of one bucket: its complete objects and its stale incomplete uploads."""

    objects: list[LandingObject]
    incomplete: list[IncompleteUpload]

    def digest(self) -> str:
        return digest(self.objects, self.incomplete)


def hour_prefix(hour: datetime) -> str:
    return hour_partition_path(hour) + "/"


def hour_of_key(key: str) -> datetime | None:
    """The event hour a key is filed under, or None for a key outside the layout (including an
    impossible date such as month=13: any node can write any key)."""
    match = _HOUR.match(key)
    if not match:
        return None
    year, month, day, hour = map(int, match.groups())
    try:
        return datetime(year, month, day, hour, tzinfo=UTC)
    except ValueError:
        return None


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
        keys = [ListedKey.from_listing(o) for o in page.get("Contents", [])]
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
                LandingObject(
                    bucket, key, listed.etag, listed.size, sidecar.key, sidecar.etag, sidecar.size
                )
            )
    return out


def incomplete_uploads(
    bucket: str, keys: Iterable[ListedKey], written_before: datetime
) -> list[IncompleteUpload]:
    """Halves of uploads written before `written_before` (younger ones may be in flight)."""
    by_key = {k.key: k for k in keys}
    out = []
    for key, listed in sorted(by_key.items()):
        if hour_of_key(key) is None or not key.endswith((".parquet", ".json")):
            continue
        stem, is_data = key.rsplit(".", 1)[0], key.endswith(".parquet")
        partner = stem + (".json" if is_data else ".parquet")
        old = listed.last_modified is None or listed.last_modified < written_before
        if partner not in by_key and old:
            missing = "sidecar" if is_data else "data object"
            out.append(IncompleteUpload(bucket, key, missing, listed.last_modified))
    return out


def hour_listing(keys: list[ListedKey], bucket: str, written_before: datetime) -> HourListing:
    return HourListing(
        complete_objects(bucket, keys), incomplete_uploads(bucket, keys, written_before)
    )


def list_hour(
    client: Any, bucket: str, hour: datetime, incomplete_before: datetime | None = None
) -> HourListing:
    """The hour's complete objects, and its incomplete uploads written before the given time."""
    keys: list[ListedKey] = []
    for page, _ in list_pages(client, bucket, hour_prefix(hour)):
        keys += page
    return hour_listing(keys, bucket, incomplete_before or datetime.min.replace(tzinfo=UTC))


def digest(objects: Iterable[LandingObject], incomplete: Iterable[IncompleteUpload] = ()) -> str:
    """Changes when an object appears, disappears or is rewritten with other content, and when
    an upload is found incomplete (so its hour is loaded and the gap shown)."""
    h = hashlib.sha256()
    for obj in sorted(objects, key=lambda o: o.key):
        h.update(f"{obj.key}|{obj.etag}|{obj.sidecar_etag}\n".encode())
    for half in sorted(incomplete, key=lambda o: o.key):
        h.update(f"incomplete|{half.key}\n".encode())
    return h.hexdigest()[:16]
