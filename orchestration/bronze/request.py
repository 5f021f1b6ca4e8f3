"""Dagster's half of a bronze load, on either engine: list the target hours, refuse a run
larger than the environment allows, and hand the engine the exact objects."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from orchestration.bronze.admission import LandingLimits
from orchestration.bronze.figures import BronzeRequest
from orchestration.bronze.schema import SchemaMode
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
    """Every object of the target hours (halves of uploads older than `incomplete_before`
    apart, to be quarantined by name)."""
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
    )
