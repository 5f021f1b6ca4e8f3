"""Dagster's half of a bronze load, on either engine: list the target hours, refuse a run
larger than the environment allows, admit the objects (their sidecars read and checked), decide
the types of the columns they disagree on, and hand the engine exactly that."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from orchestration.bronze.admission import LandingLimits
from orchestration.bronze.figures import BronzeRequest
from orchestration.bronze.objects import QuarantinedObject, admit_all
from orchestration.bronze.schema import SchemaMode, agreed_types
from orchestration.bronze.targets import PartitionTarget
from orchestration.landing.objects import list_hour


class TooManyFilesError(Exception):
    """More objects than the environment's max_files_per_run: a smaller range is needed."""


def bronze_request(
    *,
    scenario: str,
    client: Any,
    targets: list[PartitionTarget],
    mode: SchemaMode,
    run_id: str,
    limits: LandingLimits,
    max_files: int,
    incomplete_before: datetime | None,
) -> BronzeRequest:
    """Every object of the target hours, admitted or quarantined with why (halves of uploads
    older than `incomplete_before` among the latter, by name), and the types of the columns
    the admitted objects disagree on: the engine loads exactly these, by these rules."""
    with ThreadPoolExecutor(8) as pool:  # a backfill lists many hour prefixes
        hours = list(
            pool.map(lambda t: list_hour(client, t.bucket, t.hour, incomplete_before), targets)
        )
    listed = [(t, obj) for t, hour in zip(targets, hours, strict=True) for obj in hour.objects]
    incomplete = [
        (t, half) for t, hour in zip(targets, hours, strict=True) for half in hour.incomplete
    ]
    if len(listed) > max_files:
        raise TooManyFilesError(
            f"{len(listed)} objects in {len(targets)} partition(s) exceed this environment's "
            f"max_files_per_run ({max_files}); backfill a smaller range"
        )
    admitted, refused = admit_all(client, listed, limits)
    return BronzeRequest(
        scenario=scenario,
        table=f"bronze_{scenario}",
        client=client,
        targets=targets,
        listed=listed,
        incomplete=incomplete,
        mode=mode,
        run_id=run_id,
        limits=limits,
        admitted=admitted,
        refused=[QuarantinedObject(half, half.reason()) for _, half in incomplete] + refused,
        column_types=agreed_types(
            {a.obj.uri: a.sidecar.schema for a in admitted if a.sidecar.schema is not None}
        ),
    )
