"""Staging landing objects for bronze: download to local disk, verify against the sidecar."""

from __future__ import annotations

import hashlib
import io
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from urllib3.exceptions import HTTPError

from edge_agent.contract import Sidecar, SidecarError
from orchestration.bronze.admission import LandingLimits, listing_problem, ownership_problem
from orchestration.landing.objects import IncompleteUpload, LandingObject

CHUNK_BYTES = 1 << 20  # an object streams to disk; memory does not grow with its size
FOOTER_GUESS_BYTES = 64 * 1024  # a sensor table's Parquet footer is a few KiB: one GET


@dataclass(frozen=True)
class StagedObject:
    """A landing object whose bytes are on local disk and match its sidecar's SHA-256."""

    obj: LandingObject
    sidecar: Sidecar
    path: Path
    size: int


@dataclass(frozen=True)
class QuarantinedObject:
    obj: LandingObject | IncompleteUpload
    reason: str


class TransientReadError(Exception):
    """S3 failed a read in a way that may pass (5xx, throttling, a timeout, a dropped
    connection): the load rolls back and the run is retried. Nothing is quarantined for it, so
    rows an object loaded before stay in bronze."""


# Answers that will not change on a retry: the object was removed after it was listed.
_GONE = frozenset({"NoSuchKey", "404", "NotFound"})
# Credentials are configuration: `LandingZone.reachable` names what is missing.
_CREDENTIALS = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"})


def row_count_mismatch(obj: LandingObject, rows: int, sidecar: Sidecar) -> QuarantinedObject:
    return QuarantinedObject(
        obj, f"row count mismatch: object has {rows}, metadata says {sidecar.row_count}"
    )


def unreadable_parquet(obj: LandingObject, error: Exception) -> QuarantinedObject:
    return QuarantinedObject(obj, f"unreadable Parquet: {str(error).splitlines()[0][:200]}")


def admitted(obj: LandingObject, limits: LandingLimits) -> QuarantinedObject | None:
    """The object ruled out by its listing alone (caps, a key of no node), or None."""
    problem = listing_problem(obj, limits)
    return None if problem is None else QuarantinedObject(obj, problem)


def read_sidecar(
    client: Any, obj: LandingObject, limits: LandingLimits
) -> Sidecar | QuarantinedObject:
    """The object's sidecar, typed and checked (its size capped, its node the key's), or the
    object quarantined with why; raises TransientReadError when S3 may answer next time."""
    try:
        body = client.get_object(Bucket=obj.bucket, Key=obj.sidecar_key)["Body"]
        raw = body.read(limits.max_sidecar_bytes + 1)  # it may have grown since the listing
        body.close()
    except _READ_ERRORS as exc:
        return _read_failed(obj, obj.sidecar_key, exc)
    if len(raw) > limits.max_sidecar_bytes:
        return QuarantinedObject(
            obj, f"metadata sidecar is over the cap of {limits.max_sidecar_bytes} bytes"
        )
    try:
        sidecar = Sidecar.parse(raw)
    except SidecarError as exc:
        return QuarantinedObject(obj, str(exc))
    problem = ownership_problem(obj, sidecar)
    return sidecar if problem is None else QuarantinedObject(obj, problem)


def stage(
    client: Any, obj: LandingObject, path: Path, limits: LandingLimits
) -> StagedObject | QuarantinedObject:
    """Download the object to `path`, hashing as it streams; keep it only if the checksum holds."""
    ruled_out = admitted(obj, limits)
    if ruled_out is not None:
        return ruled_out
    sidecar = read_sidecar(client, obj, limits)
    if isinstance(sidecar, QuarantinedObject):
        return sidecar
    digest, size = hashlib.sha256(), 0
    try:
        body = client.get_object(Bucket=obj.bucket, Key=obj.key)["Body"]
        with path.open("wb") as out:
            for chunk in body.iter_chunks(CHUNK_BYTES):
                size += len(chunk)
                if size > limits.max_object_bytes:  # rewritten larger since the listing
                    body.close()
                    path.unlink(missing_ok=True)
                    return QuarantinedObject(
                        obj, f"object is over the cap of {limits.max_object_bytes} bytes"
                    )
                digest.update(chunk)
                out.write(chunk)
    except _READ_ERRORS as exc:
        path.unlink(missing_ok=True)
        return _read_failed(obj, obj.key, exc)
    checksum = digest.hexdigest()
    if checksum != sidecar.content_sha256:
        path.unlink(missing_ok=True)
        return QuarantinedObject(
            obj,
            f"checksum mismatch: object sha256 {checksum[:12]}…, metadata says "
            f"{sidecar.content_sha256[:12]}…",
        )
    return StagedObject(obj, sidecar, path, size)


def read_columns(
    client: Any, obj: LandingObject, limits: LandingLimits
) -> list[str] | QuarantinedObject:
    """The column names in the object's Parquet footer, read with one ranged GET of the
    object's tail (a second one only for a footer larger than that), or the object quarantined
    with why. The engine that loads the object never reads it here."""
    if obj.size < 12:  # "PAR1", a footer length and "PAR1" at the least
        return unreadable_parquet(obj, ValueError(f"{obj.size} bytes is too short for Parquet"))
    try:
        tail = _get_range(client, obj, f"bytes=-{min(obj.size, FOOTER_GUESS_BYTES)}")
        if len(tail) < 8 or tail[-4:] != b"PAR1":
            return unreadable_parquet(obj, ValueError("no Parquet footer"))
        length = struct.unpack("<I", tail[-8:-4])[0]
        if length + 8 > min(obj.size, limits.max_footer_bytes):
            return QuarantinedObject(obj, f"Parquet footer of {length} bytes is over the cap")
        if length + 8 > len(tail):
            tail = _get_range(client, obj, f"bytes=-{length + 8}")
        footer = tail[-(length + 8) :]
    except _READ_ERRORS as exc:
        return _read_failed(obj, obj.key, exc)
    try:
        return pq.ParquetFile(io.BytesIO(b"PAR1" + footer)).schema_arrow.names
    except (pa.ArrowInvalid, OSError) as exc:
        return unreadable_parquet(obj, exc)


def _get_range(client: Any, obj: LandingObject, byte_range: str) -> bytes:
    body = client.get_object(Bucket=obj.bucket, Key=obj.key, Range=byte_range, IfMatch=obj.etag)
    return body["Body"].read()


# Everything a read can fail with: botocore's own errors, and a connection that drops while
# the body streams (urllib3 and the socket, which botocore does not always wrap).
_READ_ERRORS = (ClientError, BotoCoreError, HTTPError, OSError)


def _read_failed(obj: LandingObject, key: str, exc: Exception) -> QuarantinedObject:
    """A permanent answer quarantines; credentials pass through to be named; anything else is
    transient and fails the load (retried) instead of dropping the object's rows."""
    code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
    if code in _GONE:
        return QuarantinedObject(obj, f"s3://{obj.bucket}/{key} is no longer in S3 ({code})")
    if code in _CREDENTIALS or isinstance(exc, NoCredentialsError):
        raise exc
    raise TransientReadError(
        f"s3://{obj.bucket}/{key} could not be read ({code or type(exc).__name__}): the load is "
        "rolled back and retried; bronze keeps the rows it had"
    ) from exc


def stage_all(
    client: Any,
    objects: list[LandingObject],
    directory: Path,
    limits: LandingLimits,
    threads: int = 16,
) -> list[StagedObject | QuarantinedObject]:
    """Every object staged (or quarantined), in the given order; downloads run in parallel."""
    with ThreadPoolExecutor(threads) as pool:
        return list(
            pool.map(
                lambda item: stage(client, item[1], directory / f"{item[0]:07d}.parquet", limits),
                enumerate(objects),
            )
        )
