"""What a silver run found and wrote per event hour, on either engine."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from orchestration.transforms.expectations import EXPECTATIONS


@dataclass
class HourFigures:
    """What one silver hour received in a run: shown on that partition's materialization."""

    rows_in: int = 0
    duplicates: int = 0
    written: int = 0
    by_scenario: dict[str, int] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        return {
            "dagster/row_count": self.written,
            "rows_from_bronze": self.rows_in,
            "duplicates_removed": self.duplicates,
            "rows_dropped_by_expectations": self.rows_in - self.duplicates - self.written,
            "rows_by_scenario": dg.MetadataValue.json(self.by_scenario),
        }


def hour_figures(
    rows_in: Iterable[tuple[str, int]],
    kept: Iterable[tuple[str, int]],
    written: Iterable[tuple[str, str, int]],
) -> dict[str, HourFigures]:
    """Per partition key, from the engine's counts: rows staged from bronze, rows kept after
    deduplication, and rows written per scenario."""
    hours: dict[str, HourFigures] = {}
    for key, count in rows_in:
        hours.setdefault(key, HourFigures()).rows_in = int(count)
    for key, count in kept:
        figures = hours.setdefault(key, HourFigures())
        figures.duplicates = figures.rows_in - int(count)
    for key, scenario, count in written:
        figures = hours.setdefault(key, HourFigures())
        figures.by_scenario[scenario] = int(count)
        figures.written += int(count)
    return hours


@dataclass(frozen=True)
class HourViolations:
    """One event hour's rows and, per expectation, the rows that do not meet it."""

    rows: int
    counts: dict[str, int]


def run_violations(by_hour: dict[str, HourViolations]) -> HourViolations:
    """The run's totals over its hours."""
    counts = {e.name: sum(h.counts.get(e.name, 0) for h in by_hour.values()) for e in EXPECTATIONS}
    return HourViolations(sum(h.rows for h in by_hour.values()), counts)
