"""What a landing source would load, before its sensor is turned on: read-only.

Lists the hours discovery would request, samples objects (data and sidecar), infers their
schema and compares it with bronze's current one (new, missing and retyped columns, and what
each Auto Loader schema mode would do), shows the first rows, and estimates rows, bytes, load
time and S3 request cost for a full load. Writes nothing to the warehouse, moves no cursor.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from orchestration.bronze.admission import LandingLimits, column_problem
from orchestration.bronze.loader import RESERVED_COLUMNS
from orchestration.bronze.objects import (
    QuarantinedObject,
    admit,
    stage,
    staged_footer_problem,
    unreadable_parquet,
)
from orchestration.bronze.schema import RESCUED_COLUMN
from orchestration.landing.objects import (
    LandingObject,
    hour_key,
    hour_of_key,
    list_hour,
    list_pages,
)

# Bronze's measured load rate (bench.lakehouse, 2 cores; about 1 M rows/s on this machine,
# taken conservatively) and S3's standard request prices (us-east-1, per 1,000 requests).
LOAD_ROWS_PER_SECOND = 500_000
LIST_PRICE_PER_1000 = 0.005
GET_PRICE_PER_1000 = 0.0004


@dataclass
class SchemaComparison:
    new: dict[str, str] = field(default_factory=dict)  # column -> type in the objects
    missing: list[str] = field(default_factory=list)  # in bronze, not in the objects
    retyped: dict[str, tuple[str, str]] = field(default_factory=dict)  # column -> (bronze, new)

    def by_mode(self) -> dict[str, str]:
        """What each schema mode would do with these objects."""
        new = ", ".join(self.new) or None
        retyped = ", ".join(self.retyped) or None
        unfit = f"; objects whose {retyped} do not cast are quarantined" if retyped else ""
        return {
            "addNewColumns": (f"adds {new}" if new else "no schema change") + unfit,
            "rescue": (
                f"keeps {', '.join(filter(None, [new, retyped]))} in {RESCUED_COLUMN}"
                if new or retyped else "no schema change"
            ),
            "failOnNewColumns": f"the run fails on {new}" if new else "loads" + unfit,
            "none": (f"drops {new}" if new else "no schema change") + unfit,
        }  # fmt: skip


@dataclass
class Preview:
    buckets: list[str]
    hours: list[str]  # partition keys discovery would request (hours with complete objects)
    objects: int
    bytes: int
    incomplete: int
    sampled: list[str]
    schema: dict[str, str]  # the sampled objects' columns and types
    comparison: SchemaComparison | None  # None: bronze has no table yet
    first_rows: pl.DataFrame
    estimated_rows: int
    list_requests: int
    quarantined: dict[str, str] = field(default_factory=dict)  # sampled uri -> why not loadable

    @property
    def estimated_load_seconds(self) -> float:
        return self.estimated_rows / LOAD_ROWS_PER_SECOND

    @property
    def estimated_request_cost_usd(self) -> float:
        gets = 2 * self.objects  # the data object and its sidecar
        return gets / 1000 * GET_PRICE_PER_1000 + self.list_requests / 1000 * LIST_PRICE_PER_1000

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "buckets": self.buckets,
            "hours_to_request": len(self.hours),
            "first_hour": self.hours[0] if self.hours else None,
            "last_hour": self.hours[-1] if self.hours else None,
            "objects": self.objects,
            "bytes": self.bytes,
            "incomplete_uploads": self.incomplete,
            "objects_sampled": len(self.sampled),
            "sampled_objects_quarantined": self.quarantined,
            "estimated_rows": self.estimated_rows,
            "estimated_load_seconds": round(self.estimated_load_seconds, 1),
            "estimated_s3_request_cost_usd": round(self.estimated_request_cost_usd, 6),
            "columns": self.schema,
        }
        if self.comparison is None:
            out["bronze"] = "no table yet: the first load creates it with these columns"
        else:
            retyped = self.comparison.retyped
            out |= {
                "new_columns": self.comparison.new,
                "missing_columns": self.comparison.missing,
                "retyped_columns": {k: f"{a} -> {b}" for k, (a, b) in retyped.items()},
                "schema_modes": self.comparison.by_mode(),
            }
        return out


MAX_PREFIX_KEYS = 20_000  # a prefix preview lists at most this many keys per bucket


def hours_under_prefix(client: Any, buckets: list[str], prefix: str) -> list[datetime]:
    """The event hours that keys under `prefix` belong to (bounded listing, paginated)."""
    hours: set[datetime] = set()
    for bucket in buckets:
        listed = 0
        for page, _ in list_pages(client, bucket, prefix):
            hours |= {h for k in page if (h := hour_of_key(k.key)) is not None}
            listed += len(page)
            if listed >= MAX_PREFIX_KEYS:
                break
    return sorted(hours)


def hours_between(start: datetime, end: datetime) -> list[datetime]:
    """Every hour from `start` up to and including `end`'s hour."""
    hour, out = start.replace(minute=0, second=0, microsecond=0), []
    while hour <= end:
        out.append(hour)
        hour += timedelta(hours=1)
    return out


def compare(current: pa.Schema | None, incoming: pa.Schema) -> SchemaComparison | None:
    """`current` is bronze's data schema (`loader.data_schema`: no lineage or rescued column)."""
    if current is None:
        return None
    known = {f.name: f.type for f in current}
    seen = {f.name: f.type for f in incoming}
    retyped = {  # a column that is null throughout fits any type
        n: (str(known[n]), str(t))
        for n, t in seen.items()
        if n in known and known[n] != t and not pa.types.is_null(t)
    }
    return SchemaComparison(
        new={n: str(t) for n, t in seen.items() if n not in known},
        missing=[n for n in known if n not in seen],
        retyped=retyped,
    )


def merge(a: SchemaComparison | None, b: SchemaComparison | None) -> SchemaComparison | None:
    """Two objects' comparisons as one: columns new or retyped in either, missing in both."""
    if a is None or b is None:
        return a or b
    return SchemaComparison(
        new={**a.new, **b.new},
        missing=[c for c in a.missing if c in b.missing],
        retyped={**a.retyped, **b.retyped},
    )


def preview(
    client: Any,
    buckets: list[str],
    hours: list[datetime],
    current: pa.Schema | None,
    sample_size: int = 3,
    limits: LandingLimits | None = None,
) -> Preview:
    """Read-only: listings of the hours, and GETs of at most `sample_size` objects, staged and
    checked as bronze would (a sampled object bronze would quarantine is named, not read)."""
    limits = limits or LandingLimits()
    listed: list[tuple[str, LandingObject]] = []
    incomplete = 0
    for bucket in buckets:
        for hour in hours:
            listing = list_hour(client, bucket, hour)
            listed += [(hour_key(hour), obj) for obj in listing.objects]
            incomplete += len(listing.incomplete)
    sample = [obj for _, obj in listed[:: max(1, len(listed) // max(1, sample_size))]][:sample_size]
    tables, sampled_rows, quarantined = [], 0, {}
    existing = [*(current.names if current else []), *RESERVED_COLUMNS]
    with tempfile.TemporaryDirectory(prefix="lakehouse-preview-") as folder:
        for index, obj in enumerate(sample):
            sidecar = admit(client, obj, limits)
            staged = (
                sidecar
                if isinstance(sidecar, QuarantinedObject)
                else stage(client, obj, sidecar, Path(folder) / f"{index}.parquet", limits)
            )
            if isinstance(staged, QuarantinedObject):
                quarantined[obj.uri] = staged.reason
                continue
            problem = staged_footer_problem(staged, limits)
            if problem is not None:
                quarantined[obj.uri] = problem
                continue
            try:
                problem = column_problem(pq.read_schema(staged.path), existing, limits)
                if problem is not None:
                    quarantined[obj.uri] = problem
                    continue
                tables.append(pq.read_table(staged.path))
            except (pa.ArrowInvalid, OSError) as exc:
                quarantined[obj.uri] = unreadable_parquet(obj, exc).reason
                continue
            sampled_rows += staged.sidecar.row_count
    columns: dict[str, list[str]] = {}  # objects may disagree: every type seen, in order
    for table in tables:
        for f in table.schema:
            seen = columns.setdefault(f.name, [])
            if str(f.type) not in seen:
                seen.append(str(f.type))
    comparison = None
    for table in tables:
        comparison = merge(comparison, compare(current, table.schema))
    first = pl.from_arrow(tables[0].slice(0, 5)) if tables else pl.DataFrame()
    per_object = sampled_rows / len(tables) if tables else 0
    return Preview(
        buckets=buckets,
        hours=sorted({key for key, _ in listed}),
        objects=len(listed),
        bytes=sum(obj.size for _, obj in listed),
        incomplete=incomplete,
        sampled=[obj.uri for obj in sample],
        schema={name: " | ".join(types) for name, types in columns.items()},
        comparison=comparison if tables else compare(current, pa.schema([])),
        first_rows=first,  # type: ignore[arg-type]
        estimated_rows=round(per_object * len(listed)),
        list_requests=len(buckets) * len(hours),  # one page per hour prefix, at least
        quarantined=quarantined,
    )
