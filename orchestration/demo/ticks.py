"""Sensor ticks the one-shot demo records in the instance, as the daemon would, so the sensor
pages in the UI show the ticks that launched the demo's runs (not "Sensor has never run").

The demo evaluates sensors in its own process; a tick is matched to the sensor the UI shows by
its selector: the code location (`dagster dev -f definitions.py` names it `definitions.py`),
the repository and the sensor name. Dagster has no public API for recording a tick outside the
daemon, so this module is the one place that uses its tick storage types.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.definitions.repository_definition.valid_definitions import (
    SINGLETON_REPOSITORY_NAME,
)
from dagster._core.definitions.selector import InstigatorSelector
from dagster._core.scheduler.instigation import (
    InstigatorType,
    TickData,
    TickStatus,
)
from dagster._serdes import create_snapshot_id
from dagster._utils.error import SerializableErrorInfo

CODE_LOCATION = "definitions.py"  # what `dagster dev -f definitions.py` calls the location


def sensor_selector_id(sensor_name: str, location: str = CODE_LOCATION) -> str:
    """The id the UI looks a sensor's ticks up by."""
    selector = InstigatorSelector(
        location_name=location, repository_name=SINGLETON_REPOSITORY_NAME, name=sensor_name
    )
    return create_snapshot_id(selector)


@dataclass
class TickRecord:
    """What one evaluation did; filled in while it runs, stored when it ends."""

    run_ids: list[str] = field(default_factory=list)
    skip_reason: str | None = None
    cursor: str | None = None


@contextmanager
def recorded_tick(instance: dg.DagsterInstance, sensor_name: str) -> Iterator[TickRecord]:
    """Stores a STARTED tick, yields a record to fill, and ends the tick as SUCCESS (runs
    launched), SKIPPED (with the sensor's reason) or FAILURE (with the error)."""
    selector_id = sensor_selector_id(sensor_name)
    tick = instance.create_tick(
        TickData(
            instigator_origin_id=selector_id,
            instigator_name=sensor_name,
            instigator_type=InstigatorType.SENSOR,
            status=TickStatus.STARTED,
            timestamp=time.time(),
            selector_id=selector_id,
        )
    )
    record = TickRecord()
    try:
        yield record
    except BaseException as exc:
        error = SerializableErrorInfo(f"{type(exc).__name__}: {exc}", [], type(exc).__name__)
        instance.update_tick(tick.with_status(TickStatus.FAILURE, error=error))
        raise
    for run_id in record.run_ids:
        tick = tick.with_run_info(run_id=run_id)
    tick = tick.with_cursor(record.cursor)
    if record.skip_reason and not record.run_ids:
        tick = tick.with_reason(record.skip_reason)
    instance.update_tick(
        tick.with_status(TickStatus.SUCCESS if record.run_ids else TickStatus.SKIPPED)
    )
