"""What a bronze load replaces: one partition of one bucket, by event hour (and region)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class PartitionTarget:
    partition_key: str
    hour: datetime
    bucket: str
    region: str | None = None  # regional bronze is also split by region
