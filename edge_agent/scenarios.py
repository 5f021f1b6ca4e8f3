"""Shaping rows for each pipeline type: pure Arrow functions, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from edge_agent.contract import (
    ANOMALY_TYPES,
    PHYSICAL_RANGES,
    SENSOR_ID_PATTERN,
    EmergencyThresholds,
)
from edge_agent.source import EVENT_TIME_TYPE

DATE_COLUMNS = ("manufacture_date", "installation_date")


@dataclass(frozen=True)
class FilteredRules:
    """Business rules for the filtered pipeline."""

    coordinate_precision: int = 2  # decimal places kept of latitude/longitude (2 ≈ 1 km)
    remove_out_of_range: bool = True
    drop_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScenarioSettings:
    emergency: EmergencyThresholds = field(default_factory=EmergencyThresholds)
    filtered: FilteredRules = field(default_factory=FilteredRules)
    future_tolerance_seconds: float = 60.0


@dataclass
class Shaped:
    """Rows to upload (with their event times), rows kept apart, and rows the rules removed."""

    rows: pa.Table
    event_time: pa.Array
    rejected: pa.Table  # typed rows plus `_reject_reason`
    removed: int = 0
    rules: tuple[str, ...] = ()


def _has(table: pa.Table, name: str) -> bool:
    return name in table.column_names


def _flag(condition: pa.Array) -> pa.Array:
    """NULL-safe boolean: a rule on a missing value does not fire."""
    return pc.fill_null(condition, False)


def range_violations(table: pa.Table) -> dict[str, pa.Array]:
    """One boolean array per physical-range rule that applies to the table's columns."""
    out = {}
    for name, (low, high) in PHYSICAL_RANGES.items():
        if not _has(table, name) or not pa.types.is_floating(table.schema.field(name).type):
            continue
        column = table.column(name)
        bad = pc.is_nan(column)
        if low is not None:
            bad = pc.or_(bad, pc.less(column, low))
        if high is not None:
            bad = pc.or_(bad, pc.greater(column, high))
        out[f"{name}_out_of_range"] = _flag(bad)
    return out


def schematized_violations(
    table: pa.Table, event_time: pa.Array, now: datetime, future_tolerance: timedelta
) -> dict[str, pa.Array]:
    """Every schematized rule that applies, as rule name -> rows that break it."""
    out: dict[str, pa.Array] = {}
    if _has(table, "sensor_id"):
        ok = pc.match_substring_regex(table.column("sensor_id"), SENSOR_ID_PATTERN)
        out["sensor_id_format"] = pc.invert(_flag(ok))
    out.update(range_violations(table))
    limit = pa.scalar(now + future_tolerance, EVENT_TIME_TYPE)
    out["timestamp_in_future"] = _flag(pc.greater(event_time, limit))
    if _has(table, "anomaly_flag"):
        flagged = _flag(pc.equal(table.column("anomaly_flag"), 1))
        typed = (
            pc.is_in(table.column("anomaly_type"), pa.array(ANOMALY_TYPES))
            if _has(table, "anomaly_type")
            else pa.repeat(False, table.num_rows)
        )
        out["anomaly_type_missing_or_unknown"] = pc.and_(flagged, pc.invert(_flag(typed)))
    for name in DATE_COLUMNS:
        if _has(table, name) and pa.types.is_string(table.schema.field(name).type):
            column = table.column(name)
            parsed = pc.strptime(column, format="%Y-%m-%d", unit="s", error_is_null=True)
            out[f"{name}_format"] = _flag(pc.and_(pc.is_valid(column), pc.is_null(parsed)))
    return out


def emergency_reasons(table: pa.Table, thresholds: EmergencyThresholds) -> pa.Array:
    """Why each row needs attention ('' when it does not): anomaly flag or thresholds."""
    parts: list[pa.Array] = []
    if _has(table, "anomaly_flag"):
        flagged = _flag(pc.equal(table.column("anomaly_flag"), 1))
        kind = (
            pc.fill_null(table.column("anomaly_type"), "unknown")
            if _has(table, "anomaly_type")
            else pa.repeat("unknown", table.num_rows)
        )
        label = pc.binary_join_element_wise("anomaly:", kind, ";", "")
        parts.append(pc.if_else(flagged, label, ""))
    for metric in ("temperature", "pressure", "voltage", "humidity"):
        if not _has(table, metric):
            continue
        column = table.column(metric)
        high = getattr(thresholds, f"{metric}_high")
        low = getattr(thresholds, f"{metric}_low")
        parts.append(pc.if_else(_flag(pc.greater(column, high)), f"{metric}_high;", ""))
        parts.append(pc.if_else(_flag(pc.less(column, low)), f"{metric}_low;", ""))
    if not parts:
        return pa.repeat("", table.num_rows)
    return pc.utf8_rtrim(pc.binary_join_element_wise(*parts, ""), ";")


def _reasons(violations: dict[str, pa.Array], rows: int) -> pa.Array:
    if not violations:
        return pa.repeat("", rows)
    labelled = [pc.if_else(bad, f"{name};", "") for name, bad in violations.items()]
    return pc.utf8_rtrim(pc.binary_join_element_wise(*labelled, ""), ";")


def _split(table: pa.Table, event_time: pa.Array, reasons: pa.Array) -> tuple[Shaped, pa.Array]:
    bad = pc.not_equal(reasons, "")
    good = pc.invert(bad)
    rejected = table.filter(bad).append_column("_reject_reason", reasons.filter(bad))
    return Shaped(table.filter(good), event_time.filter(good), rejected), good


def _empty_rejects(table: pa.Table) -> pa.Table:
    return table.schema.append(pa.field("_reject_reason", pa.string())).empty_table()


def shape(
    scenario: str,
    table: pa.Table,
    event_time: pa.Array,
    timestamp_column: str,
    settings: ScenarioSettings,
    now: datetime | None = None,
) -> Shaped:
    """Apply one pipeline type's rules to rows whose event times already parsed."""
    now = now or datetime.now(UTC)
    if scenario in ("raw", "regional"):
        return Shaped(table, event_time, _empty_rejects(table), rules=("as_is",))
    if scenario == "schematized":
        violations = schematized_violations(
            table, event_time, now, timedelta(seconds=settings.future_tolerance_seconds)
        )
        shaped, _ = _split(table, event_time, _reasons(violations, table.num_rows))
        rows = shaped.rows
        index = rows.schema.get_field_index(timestamp_column)
        rows = rows.set_column(
            index, pa.field(timestamp_column, EVENT_TIME_TYPE), shaped.event_time
        )
        for name in DATE_COLUMNS:
            if _has(rows, name) and pa.types.is_string(rows.schema.field(name).type):
                dates = pc.cast(
                    pc.strptime(rows.column(name), format="%Y-%m-%d", unit="s"), pa.date32()
                )
                rows = rows.set_column(rows.schema.get_field_index(name), name, dates)
        shaped.rows = rows
        shaped.rules = tuple(violations)
        return shaped
    if scenario == "filtered":
        rules = settings.filtered
        applied: list[str] = []
        removed = 0
        if rules.remove_out_of_range:
            violations = range_violations(table)
            keep = pc.invert(_flag(pc.not_equal(_reasons(violations, table.num_rows), "")))
            removed = table.num_rows - pc.sum(pc.cast(keep, pa.int64())).as_py()
            table, event_time = table.filter(keep), event_time.filter(keep)
            applied += list(violations)
        for name in ("latitude", "longitude"):
            if _has(table, name):
                rounded = pc.round(table.column(name), rules.coordinate_precision)
                table = table.set_column(table.schema.get_field_index(name), name, rounded)
                applied.append(f"{name}_rounded_to_{rules.coordinate_precision}dp")
        dropped = [c for c in rules.drop_columns if _has(table, c) and c != timestamp_column]
        table = table.drop_columns(dropped)
        applied += [f"dropped_{c}" for c in dropped]
        return Shaped(table, event_time, _empty_rejects(table), removed, tuple(applied))
    if scenario == "emergency":
        reasons = emergency_reasons(table, settings.emergency)
        keep = pc.not_equal(reasons, "")
        rows = table.filter(keep).append_column("emergency_reason", reasons.filter(keep))
        return Shaped(
            rows,
            event_time.filter(keep),
            _empty_rejects(table),
            removed=table.num_rows - rows.num_rows,
            rules=("anomaly_flag", *(f"{m}_thresholds" for m in ("temperature", "pressure",
                                                                   "voltage", "humidity"))),
        )  # fmt: skip
    raise ValueError(f"unknown scenario {scenario!r}")


def split_by_hour(
    table: pa.Table, event_time: pa.Array
) -> list[tuple[datetime, pa.Table, pa.Array]]:
    """(hour, rows, their event times) per UTC event hour, rows in their original (id) order."""
    if table.num_rows == 0:
        return []
    if isinstance(event_time, pa.ChunkedArray):
        event_time = event_time.combine_chunks()
    hours = pc.cast(pc.floor_temporal(event_time, unit="hour"), pa.int64())
    bounds = pc.min_max(hours)
    if bounds["min"] == bounds["max"]:
        return [(_hour(bounds["min"].as_py()), table, event_time)]
    # Rows in id order are nearly always in time order too; only late rows force a sort.
    in_order = pc.all(pc.greater_equal(hours[1:], hours[:-1])).as_py()
    if not in_order:
        order = pc.sort_indices(hours)  # stable: id order kept inside each hour
        table, hours, event_time = table.take(order), hours.take(order), event_time.take(order)
    runs = pc.run_end_encode(hours)
    parts, begin = [], 0
    for end, value in zip(runs.run_ends.to_pylist(), runs.values.to_pylist(), strict=True):
        length = end - begin
        parts.append((_hour(value), table.slice(begin, length), event_time.slice(begin, length)))
        begin = end
    return parts


def _hour(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
