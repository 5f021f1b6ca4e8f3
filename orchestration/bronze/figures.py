"""What a bronze load is given and what it returns, on either engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestration.bronze.admission import LandingLimits
from orchestration.bronze.objects import AdmittedObject, QuarantinedObject
from orchestration.bronze.schema import ColumnVote, SchemaMode
from orchestration.bronze.targets import PartitionTarget
from orchestration.landing.objects import IncompleteUpload, LandingObject


@dataclass(frozen=True)
class BronzeRequest:
    """The exact objects Dagster listed for the target partitions (and the halves of uploads
    it found), for the engine to verify and load."""

    scenario: str
    table: str
    client: Any  # the landing zone's S3 client
    targets: list[PartitionTarget]
    listed: list[tuple[PartitionTarget, LandingObject]]
    incomplete: list[tuple[PartitionTarget, IncompleteUpload]]
    mode: SchemaMode
    run_id: str
    limits: LandingLimits
    # Admission, done once by Dagster: the objects admitted with their sidecars, and those
    # quarantined before any engine reads them (halves of uploads, admission's refusals).
    admitted: list[AdmittedObject] = field(default_factory=list)
    refused: list[QuarantinedObject] = field(default_factory=list)
    # Where the admitted objects type a column differently, the type it takes (`agreed_types`).
    column_types: dict[str, ColumnVote] = field(default_factory=dict)


@dataclass
class PartitionLoad:
    """What one partition received: shown on that partition's materialization."""

    rows: int = 0
    objects: int = 0
    bytes: int = 0
    quarantined: int = 0


@dataclass
class BronzeLoad:
    rows: int = 0
    objects: int = 0
    bytes: int = 0
    rescued_rows: int | None = 0  # None: the engine does not count them
    objects_bulk_loaded: int | None = 0  # DuckDB: loaded by one Parquet scan, not one by one
    quarantined: list[QuarantinedObject] = field(default_factory=list)
    partitions: dict[str, PartitionLoad] = field(default_factory=dict)
    schema_version: int | None = None  # None: the engine keeps no schema history
    columns: list[tuple[str, str]] = field(default_factory=list)  # data columns as stored
    added_columns: list[str] | None = field(default_factory=list)  # None: not reported
    renamed_columns: dict[str, str] = field(default_factory=dict)  # reserved name -> stored as
    schema_history: list[tuple[Any, ...]] = field(default_factory=list)
    shown: dict[str, Any] = field(default_factory=dict)  # the engine's view (preview, run link)
    checked: bool = True  # False: the engine discovered objects itself, sidecars unread
