"""Staging landing objects for bronze: download to local disk, verify against the sidecar."""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from urllib3.exceptions import HTTPError

from edge_agent.contract import Sidecar, SidecarError
from orchestration.bronze.admission import (
    LandingLimits,
    case_clash,
    footer_problem,
    listing_problem,
    ownership_problem,
)
from orchestration.bronze.targets import PartitionTarget
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


@dataclass(frozen=True)
class AdmittedObject:
    """A listed object that passed admission: its sidecar read and checked, its hour known."""

    target: PartitionTarget
    obj: LandingObject
    sidecar: Sidecar


class TransientReadError(Exception):
    """S3 failed a read in a way that may pass (5xx, throttling, a timeout, a dropped
    connection): the load rolls back and the run is retried. Nothing is quarantined for it, so
    rows an object loaded before stay in bronze."""


# How an S3 error answer is taken, as data: the Databricks job receives the same (one rule).
# Credentials are configuration (the run fails, not retried; `LandingZone.reachable` names what
# is missing); 5xx, 408, 429 and these codes may pass (the run fails and is retried, nothing is
# quarantined); any other answer is about this object (quarantined with the code: gone, in
# Glacier, encrypted with a key the reader lacks, rewritten since it was listed).
S3_ERRORS: dict[str, list[Any]] = {
    "credentials": ["InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
                    "InvalidToken", "TokenRefreshRequired"],
    "transient_codes": ["SlowDown", "Throttling", "ThrottlingException", "RequestTimeout",
                        "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable",
                        "RequestLimitExceeded", "OperationAborted"],
    "transient_statuses": [408, 429],
}  # fmt: skip


def s3_error_kind(code: str, status: int) -> str:
    """ "credentials", "transient" or "permanent" for an S3 error answer (see S3_ERRORS)."""
    if code in S3_ERRORS["credentials"]:
        return "credentials"
    if status >= 500 or status in S3_ERRORS["transient_statuses"]:
        return "transient"
    return "transient" if code in S3_ERRORS["transient_codes"] else "permanent"


# Quarantine reasons an engine reports by kind (the Databricks job sends kind and details;
# Dagster words them here, so both engines name a bad object the same way).
REASONS: dict[str, Callable[..., str]] = {
    "checksum": lambda actual, expected: (
        f"checksum mismatch: object sha256 {actual[:12]}…, metadata says {expected[:12]}…"
    ),
    "rows": lambda rows, expected: (
        f"row count mismatch: object has {rows}, metadata says {expected}"
    ),
    "over_cap": lambda limit: f"object is over the cap of {limit} bytes",
    "s3": lambda uri, code: (
        f"{uri} was rewritten since it was listed (loaded when its hour is requested again)"
        if code == "PreconditionFailed"
        else f"{uri} cannot be read from S3 ({code})"
    ),
    "case": case_clash,
    "schema": lambda why: f"schema cannot be reconciled: {why}",
}


def reason(kind: str, detail: dict[str, Any]) -> str:
    return REASONS[kind](**detail)


def row_count_mismatch(obj: LandingObject, rows: int, sidecar: Sidecar) -> QuarantinedObject:
    return QuarantinedObject(obj, reason("rows", {"rows": rows, "expected": sidecar.row_count}))


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
        body = client.get_object(Bucket=obj.bucket, Key=obj.sidecar_key, IfMatch=obj.sidecar_etag)[
            "Body"
        ]
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


def admit(client: Any, obj: LandingObject, limits: LandingLimits) -> Sidecar | QuarantinedObject:
    """The object's sidecar if the object passes admission (caps, the key's node, a readable
    sidecar of this node), else the object quarantined with why: both engines' first step."""
    ruled_out = admitted(obj, limits)
    return ruled_out if ruled_out is not None else read_sidecar(client, obj, limits)


def admit_all(
    client: Any,
    listed: list[tuple[PartitionTarget, LandingObject]],
    limits: LandingLimits,
    threads: int = 16,
) -> tuple[list[AdmittedObject], list[QuarantinedObject]]:
    """Admission for a whole load, in the listing's order, done once by Dagster for either
    engine: the objects admitted with their sidecars, and those quarantined with why."""
    with ThreadPoolExecutor(threads) as pool:
        outcomes = list(pool.map(lambda item: admit(client, item[1], limits), listed))
    admitted_objects, quarantined = [], []
    for (target, obj), outcome in zip(listed, outcomes, strict=True):
        if isinstance(outcome, QuarantinedObject):
            quarantined.append(outcome)
        else:
            admitted_objects.append(AdmittedObject(target, obj, outcome))
    return admitted_objects, quarantined


def lineage(obj: LandingObject, sidecar: Sidecar, target: PartitionTarget) -> dict[str, Any]:
    """The lineage columns every row of the object gets in bronze."""
    return {
        "_source_object": obj.uri,
        "_node_id": sidecar.node_id,
        "_region": target.region or sidecar.region,
        "_batch_id": sidecar.batch_id,
        "_partition_hour": target.hour,
    }


def stage(
    client: Any, obj: LandingObject, sidecar: Sidecar, path: Path, limits: LandingLimits
) -> StagedObject | QuarantinedObject:
    """Download an admitted object to `path`, hashing as it streams; keep it only if the
    checksum its sidecar states holds."""
    digest, size = hashlib.sha256(), 0
    try:
        # The bytes the listing named: a rewrite since then is a new digest, requested again.
        body = client.get_object(Bucket=obj.bucket, Key=obj.key, IfMatch=obj.etag)["Body"]
        with path.open("wb") as out:
            for chunk in body.iter_chunks(CHUNK_BYTES):
                size += len(chunk)
                if size > limits.max_object_bytes:  # rewritten larger since the listing
                    body.close()
                    path.unlink(missing_ok=True)
                    return QuarantinedObject(
                        obj, reason("over_cap", {"limit": limits.max_object_bytes})
                    )
                digest.update(chunk)
                out.write(chunk)
    except _READ_ERRORS as exc:
        path.unlink(missing_ok=True)
        return _read_failed(obj, obj.key, exc)
    checksum = digest.hexdigest()
    if checksum != sidecar.content_sha256:
        path.unlink(missing_ok=True)
        detail = {"actual": checksum, "expected": sidecar.content_sha256}
        return QuarantinedObject(obj, reason("checksum", detail))
    return StagedObject(obj, sidecar, path, size)


def staged_footer_problem(staged: StagedObject, limits: LandingLimits) -> str | None:
    """`footer_problem` for a staged copy: its tail says how long the footer is (None when
    there is no Parquet tail: reading the file names that error)."""
    with staged.path.open("rb") as f:
        if staged.size < 12:
            return None
        f.seek(-8, 2)
        tail = f.read(8)
    if tail[4:] != b"PAR1":
        return None
    return footer_problem(struct.unpack("<I", tail[:4])[0], staged.size, limits)


def read_columns(
    client: Any, obj: LandingObject, limits: LandingLimits
) -> pa.Schema | QuarantinedObject:
    """The columns in the object's Parquet footer, read with one ranged GET of the
    object's tail (a second one only for a footer larger than that), or the object quarantined
    with why. The engine that loads the object never reads it here."""
    if obj.size < 12:  # "PAR1", a footer length and "PAR1" at the least
        return unreadable_parquet(obj, ValueError(f"{obj.size} bytes is too short for Parquet"))
    try:
        tail = _get_range(client, obj, f"bytes=-{min(obj.size, FOOTER_GUESS_BYTES)}")
        if len(tail) < 8 or tail[-4:] != b"PAR1":
            return unreadable_parquet(obj, ValueError("no Parquet footer"))
        length = struct.unpack("<I", tail[-8:-4])[0]
        problem = footer_problem(length, obj.size, limits)
        if problem is not None:
            return QuarantinedObject(obj, problem)
        if length + 8 > len(tail):
            tail = _get_range(client, obj, f"bytes=-{length + 8}")
        footer = tail[-(length + 8) :]
    except _READ_ERRORS as exc:
        return _read_failed(obj, obj.key, exc)
    try:
        return pq.ParquetFile(io.BytesIO(b"PAR1" + footer)).schema_arrow
    except (pa.ArrowInvalid, OSError) as exc:
        return unreadable_parquet(obj, exc)


def _get_range(client: Any, obj: LandingObject, byte_range: str) -> bytes:
    body = client.get_object(Bucket=obj.bucket, Key=obj.key, Range=byte_range, IfMatch=obj.etag)
    return body["Body"].read()


# Everything a read can fail with: botocore's own errors, and a connection that drops while
# the body streams (urllib3 and the socket, which botocore does not always wrap).
_READ_ERRORS = (ClientError, BotoCoreError, HTTPError, OSError)


def _read_failed(obj: LandingObject, key: str, exc: Exception) -> QuarantinedObject:
    """A permanent answer quarantines; credentials pass through to be named; anything else
    (an error answer that may pass, or no answer at all) fails the load, which is retried,
    instead of dropping the object's rows."""
    if isinstance(exc, NoCredentialsError):
        raise exc
    code = ""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        kind = s3_error_kind(code, status)
        if kind == "credentials":
            raise exc
        if kind == "permanent":
            detail = {"uri": f"s3://{obj.bucket}/{key}", "code": code or status}
            return QuarantinedObject(obj, reason("s3", detail))
    raise TransientReadError(
        f"s3://{obj.bucket}/{key} could not be read ({code or type(exc).__name__}): the load is "
        "rolled back and retried; bronze keeps the rows it had"
    ) from exc


def stage_all(
    client: Any,
    objects: list[AdmittedObject],
    directory: Path,
    limits: LandingLimits,
    threads: int = 16,
) -> list[StagedObject | QuarantinedObject]:
    """Every object staged (or quarantined), in the given order; downloads run in parallel."""
    with ThreadPoolExecutor(threads) as pool:
        return list(
            pool.map(
                lambda item: stage(
                    client,
                    item[1].obj,
                    item[1].sidecar,
                    directory / f"{item[0]:07d}.parquet",
                    limits,
                ),
                enumerate(objects),
            )
        )
