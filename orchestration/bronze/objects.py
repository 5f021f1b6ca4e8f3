"""Staging landing objects for bronze: download to local disk, verify against the sidecar."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from orchestration.landing.objects import IncompleteUpload, LandingObject

CHUNK_BYTES = 1 << 20  # an object streams to disk; memory does not grow with its size


@dataclass(frozen=True)
class StagedObject:
    """A landing object whose bytes are on local disk and match its sidecar's SHA-256."""

    obj: LandingObject
    sidecar: dict[str, Any]
    path: Path
    size: int


@dataclass(frozen=True)
class QuarantinedObject:
    obj: LandingObject | IncompleteUpload
    reason: str


def row_count_mismatch(obj: LandingObject, rows: int, sidecar: dict[str, Any]) -> QuarantinedObject:
    return QuarantinedObject(
        obj, f"row count mismatch: object has {rows}, metadata says {sidecar.get('row_count')}"
    )


def unreadable_parquet(obj: LandingObject, error: Exception) -> QuarantinedObject:
    return QuarantinedObject(obj, f"unreadable Parquet: {str(error).splitlines()[0][:200]}")


def read_sidecar(client: Any, obj: LandingObject) -> dict[str, Any] | QuarantinedObject:
    """The object's JSON sidecar, or the object quarantined with why it cannot be read."""
    try:
        sidecar = json.loads(
            client.get_object(Bucket=obj.bucket, Key=obj.sidecar_key)["Body"].read()
        )
    except ValueError:
        return QuarantinedObject(obj, "metadata sidecar is not valid JSON")
    except (ClientError, BotoCoreError) as exc:
        return _unreachable(obj, exc)
    if not isinstance(sidecar, dict):
        return QuarantinedObject(obj, "metadata sidecar is not a JSON object")
    return sidecar


def stage(client: Any, obj: LandingObject, path: Path) -> StagedObject | QuarantinedObject:
    """Download the object to `path`, hashing as it streams; keep it only if the checksum holds."""
    sidecar = read_sidecar(client, obj)
    if isinstance(sidecar, QuarantinedObject):
        return sidecar
    digest, size = hashlib.sha256(), 0
    try:
        body = client.get_object(Bucket=obj.bucket, Key=obj.key)["Body"]
        with path.open("wb") as out:
            for chunk in body.iter_chunks(CHUNK_BYTES):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
    except (ClientError, BotoCoreError) as exc:
        path.unlink(missing_ok=True)
        return _unreachable(obj, exc)
    checksum = digest.hexdigest()
    if checksum != sidecar.get("content_sha256"):
        path.unlink(missing_ok=True)
        return QuarantinedObject(
            obj,
            f"checksum mismatch: object sha256 {checksum[:12]}…, metadata says "
            f"{str(sidecar.get('content_sha256'))[:12]}…",
        )
    return StagedObject(obj, sidecar, path, size)


def _unreachable(obj: LandingObject, exc: Exception) -> QuarantinedObject:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "error")
        return QuarantinedObject(obj, f"could not be read from S3 ({code})")
    return QuarantinedObject(obj, f"could not be read from S3 ({type(exc).__name__})")


def stage_all(
    client: Any, objects: list[LandingObject], directory: Path, threads: int = 16
) -> list[StagedObject | QuarantinedObject]:
    """Every object staged (or quarantined), in the given order; downloads run in parallel."""
    with ThreadPoolExecutor(threads) as pool:
        return list(
            pool.map(
                lambda item: stage(client, item[1], directory / f"{item[0]:07d}.parquet"),
                enumerate(objects),
            )
        )
