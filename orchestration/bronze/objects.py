"""Fetching landing objects for bronze: download, verify against the sidecar, or quarantine."""

from __future__ import annotations

import hashlib
import io
import json
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from botocore.exceptions import BotoCoreError, ClientError

from orchestration.landing.objects import LandingObject


@dataclass
class VerifiedObject:
    obj: LandingObject
    sidecar: dict[str, Any]
    table: pa.Table
    size: int


@dataclass
class QuarantinedObject:
    obj: LandingObject
    reason: str


def row_count_mismatch(obj: LandingObject, rows: int, sidecar: dict[str, Any]) -> QuarantinedObject:
    return QuarantinedObject(
        obj, f"row count mismatch: object has {rows}, metadata says {sidecar.get('row_count')}"
    )


def fetch(client: Any, obj: LandingObject) -> VerifiedObject | QuarantinedObject:
    """The object's rows, if its bytes, checksum, Parquet and row count all agree."""
    try:
        body = client.get_object(Bucket=obj.bucket, Key=obj.key)["Body"].read()
        raw_sidecar = client.get_object(Bucket=obj.bucket, Key=obj.sidecar_key)["Body"].read()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        return QuarantinedObject(obj, f"could not be read from S3 ({code})")
    except BotoCoreError as exc:
        return QuarantinedObject(obj, f"could not be read from S3 ({type(exc).__name__})")
    try:
        sidecar = json.loads(raw_sidecar)
    except ValueError:
        return QuarantinedObject(obj, "metadata sidecar is not valid JSON")
    checksum = hashlib.sha256(body).hexdigest()
    if checksum != sidecar.get("content_sha256"):
        return QuarantinedObject(
            obj,
            f"checksum mismatch: object sha256 {checksum[:12]}…, metadata says "
            f"{str(sidecar.get('content_sha256'))[:12]}…",
        )
    try:
        table = pq.read_table(io.BytesIO(body))
    except (pa.ArrowInvalid, OSError) as exc:
        return QuarantinedObject(obj, f"unreadable Parquet: {str(exc).splitlines()[0][:200]}")
    if table.num_rows != sidecar.get("row_count"):
        return row_count_mismatch(obj, table.num_rows, sidecar)
    return VerifiedObject(obj, sidecar, table, len(body))


def fetch_in_order(
    client: Any, objects: list[LandingObject], window: int = 32, threads: int = 16
) -> Iterator[VerifiedObject | QuarantinedObject]:
    """Results in key order while later objects download: at most `window` held in memory."""
    with ThreadPoolExecutor(threads) as pool:
        pending: deque[Future[VerifiedObject | QuarantinedObject]] = deque()
        upcoming = iter(objects)
        for obj in upcoming:
            pending.append(pool.submit(fetch, client, obj))
            if len(pending) >= window:
                break
        while pending:
            result = pending.popleft().result()
            nxt = next(upcoming, None)
            if nxt is not None:
                pending.append(pool.submit(fetch, client, nxt))
            yield result


def fetch_sidecars(client: Any, objects: list[LandingObject]) -> dict[str, dict[str, Any]]:
    """Sidecars by object URI; an unreadable or invalid one is simply absent."""

    def one(obj: LandingObject) -> tuple[str, dict[str, Any] | None]:
        try:
            body = client.get_object(Bucket=obj.bucket, Key=obj.sidecar_key)["Body"].read()
            document = json.loads(body)
        except (ClientError, BotoCoreError, ValueError):
            return obj.uri, None
        return obj.uri, document if isinstance(document, dict) else None

    with ThreadPoolExecutor(16) as pool:
        return {uri: doc for uri, doc in pool.map(one, objects) if doc is not None}
