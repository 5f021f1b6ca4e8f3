"""The node's SQLite sensor table: detection, a typed read plan, and bounded reads by id range."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from edge_agent.database import AdbcSqlite, DatabaseError, NodeDatabase
from edge_agent.errors import ConfigError, SourceError
from edge_agent.schema import AGENT_TABLES

EVENT_TIME_TYPE = pa.timestamp("us", tz="UTC")


def quote_ident(name: str) -> str:
    """Quote an identifier that came from the database; never paste names into SQL unquoted."""
    if "\x00" in name:
        raise SourceError(f"identifier {name!r} contains a NUL byte")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A SQL string literal: single quotes doubled, so data can never end the string early."""
    if "\x00" in text:
        raise SourceError(f"name {text!r} contains a NUL byte")
    return "'" + text.replace("'", "''") + "'"


def arrow_type_for(declared: str) -> pa.DataType:
    """SQLite's column affinity rules, mapped to the Arrow type the agent writes."""
    d = declared.upper()
    if "INT" in d:
        return pa.int64()
    if any(token in d for token in ("CHAR", "CLOB", "TEXT")):
        return pa.string()
    if "BLOB" in d:
        return pa.binary()
    if any(token in d for token in ("REAL", "FLOA", "DOUB")):
        return pa.float64()
    if not d or "DATE" in d or "TIME" in d:
        # No affinity, or NUMERIC affinity that in practice holds ISO-8601 text.
        return pa.string()
    return pa.float64()


@dataclass(frozen=True)
class SourceTable:
    """A sensor table resolved against the database: names, key and planned Arrow schema."""

    name: str
    key_column: str
    timestamp_column: str
    schema: pa.Schema
    autoincrement: bool

    @property
    def columns(self) -> list[str]:
        return self.schema.names


def _user_tables(db: NodeDatabase) -> list[str]:
    rows = db.query(
        "SELECT name FROM sqlite_master WHERE type = 'table' "
        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
    )
    return sorted(name for (name,) in rows if name not in AGENT_TABLES)


def resolve_table(
    db: NodeDatabase, table: str | None = None, timestamp_column: str | None = None
) -> SourceTable:
    """Find the sensor table and its timestamp column, as configured or auto-detected."""
    tables = _user_tables(db)
    if table is None:
        if not tables:
            raise SourceError("no sensor table in the database (expected one user table)")
        if len(tables) > 1:
            raise ConfigError(
                f"several tables in the database ({', '.join(tables)}): choose one with --table"
            )
        table = tables[0]
    elif table not in tables:
        raise SourceError(f"table {table!r} does not exist in the database")

    # A literal, not a bound parameter: the ADBC driver takes a full second on a bound
    # table-valued pragma.
    info = db.query(
        f"SELECT name, type, pk FROM pragma_table_info({quote_literal(table)}) ORDER BY cid"
    )
    pk_columns = [(name, declared) for name, declared, pk in info if pk]
    if len(pk_columns) != 1 or pk_columns[0][1].upper() != "INTEGER":
        raise SourceError(
            f"table {table!r} has no INTEGER PRIMARY KEY column; the agent tracks progress by it"
        )
    key_column = pk_columns[0][0]
    ts = _timestamp_column(
        table, [(name, declared) for name, declared, _ in info], timestamp_column
    )
    fields = []
    for name, declared, _ in info:
        arrow_type = pa.string() if name == ts and arrow_type_for(declared) != pa.int64() else None
        fields.append(pa.field(name, arrow_type or arrow_type_for(declared)))
    definition = db.scalar(
        "SELECT upper(sql) FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    )
    autoincrement = "AUTOINCREMENT" in (definition or "")
    return SourceTable(table, key_column, ts, pa.schema(fields), autoincrement)


def _timestamp_column(table: str, columns: list[tuple[str, str]], configured: str | None) -> str:
    names = [name for name, _ in columns]
    if configured is not None:
        if configured not in names:
            raise SourceError(f"timestamp column {configured!r} does not exist in table {table!r}")
        return configured
    for name in names:
        if name.lower() == "timestamp":
            return name
    candidates = [
        name for name, declared in columns if any(t in declared.upper() for t in ("DATE", "TIME"))
    ]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise SourceError(
            f"no timestamp column in table {table!r}: name one with --timestamp-column"
        )
    raise ConfigError(
        f"several possible timestamp columns in table {table!r} ({', '.join(candidates)}): "
        "choose one with --timestamp-column"
    )


@dataclass
class ClaimRows:
    """What one id range read gave: rows typed as planned, and rows that could not be typed."""

    rows: pa.Table
    untyped: pa.Table  # every column as text, plus `_reject_reason`


class SourceReader:
    """Reads id ranges of the sensor table through ADBC; one reader per thread."""

    def __init__(self, path: Path, table: SourceTable) -> None:
        self._path = path
        self._table = table
        self._sql = AdbcSqlite(path)
        q = quote_ident
        t = table
        key = q(t.key_column)
        self._fast_sql = (
            f"SELECT {', '.join(q(c) for c in t.columns)} FROM {q(t.name)} "
            f"WHERE {key} > ? AND {key} <= ? ORDER BY {key}"
        )
        guarded, violations = zip(*(_guarded_column(f) for f in t.schema), strict=True)
        self._guarded_sql = (
            f"SELECT {', '.join(guarded)}, ({' || '.join(violations)}) AS _violations "
            f"FROM {q(t.name)} WHERE {key} > ? AND {key} <= ? ORDER BY {key}"
        )
        self._as_text_sql = (
            "SELECT "
            + ", ".join(
                f"CASE typeof({q(c)}) WHEN 'blob' THEN hex({q(c)}) ELSE CAST({q(c)} AS TEXT) END "
                f"AS {q(c)}"
                for c in t.columns
            )
            + f" FROM {q(t.name)} WHERE {key} > ? AND {key} <= ? ORDER BY {key}"
        )

    def close(self) -> None:
        self._sql.close()

    def _query(self, sql: str, start: int, end: int, rows: int) -> pa.Table:
        # Inference over the whole range keeps one type per column for the claim.
        return self._sql.arrow(sql, (start, end), batch_rows=rows)

    def read(self, start: int, end: int, expected_rows: int) -> ClaimRows:
        """Rows with start < key <= end, typed by the plan; mistyped rows come back apart."""
        try:
            table = self._query(self._fast_sql, start, end, expected_rows)
            typed = _conform(table, self._table.schema)
        except (OSError, pa.ArrowInvalid, DatabaseError):
            typed = None
        if typed is not None:
            return ClaimRows(typed, _empty_untyped(self._table.columns))
        return self._read_guarded(start, end, expected_rows)

    def _read_guarded(self, start: int, end: int, expected_rows: int) -> ClaimRows:
        table = self._query(self._guarded_sql, start, end, expected_rows)
        violations = table.column("_violations")
        bad = pc.not_equal(violations, "")
        typed = _conform(
            table.filter(pc.invert(bad)).drop_columns(["_violations"]), self._table.schema
        )
        if typed is None:  # the guarded plan only yields planned types or NULL
            raise SourceError(f"could not type rows {start + 1}..{end} of {self._table.name!r}")
        bad_rows = table.filter(bad)
        if bad_rows.num_rows == 0:
            return ClaimRows(typed, _empty_untyped(self._table.columns))
        as_text = self._query(self._as_text_sql, start, end, expected_rows)
        bad_keys = bad_rows.column(self._table.key_column)
        key_text = pc.cast(bad_keys, pa.string())
        untyped = as_text.filter(pc.is_in(as_text.column(self._table.key_column), key_text))
        reasons = pc.binary_join_element_wise(
            "wrong storage type in column(s): ",
            pc.utf8_rtrim(bad_rows.column("_violations"), ";"),
            "",
        )
        untyped = untyped.append_column("_reject_reason", reasons)
        return ClaimRows(typed, untyped)


def _guarded_column(field: pa.Field) -> tuple[str, str]:
    """A SELECT expression that yields only the planned type, and one naming a violation."""
    c = quote_ident(field.name)
    literal = "'" + field.name.replace("'", "''") + ";'"
    if field.type == pa.int64():
        expr, bad = (
            f"CASE WHEN typeof({c}) = 'integer' THEN {c} END",
            f"typeof({c}) NOT IN ('integer', 'null')",
        )
    elif field.type == pa.float64():
        expr = f"CASE WHEN typeof({c}) IN ('real', 'integer') THEN CAST({c} AS REAL) END"
        bad = f"typeof({c}) IN ('text', 'blob')"
    elif field.type == pa.string():
        expr = f"CASE WHEN typeof({c}) IN ('text', 'integer', 'real') THEN CAST({c} AS TEXT) END"
        bad = f"typeof({c}) = 'blob'"
    else:
        expr, bad = f"CAST({c} AS BLOB)", "0"
    return f"{expr} AS {c}", f"CASE WHEN {bad} THEN {literal} ELSE '' END"


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table | None:
    """Cast what the driver inferred to the plan when that loses nothing; None if it would."""
    columns = []
    for field in schema:
        column = table.column(field.name)
        if column.type != field.type:
            lossless = column.null_count == len(column) or (
                pa.types.is_integer(column.type) and field.type == pa.float64()
            )
            if not lossless:
                return None
            column = column.cast(field.type)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def _empty_untyped(columns: list[str]) -> pa.Table:
    names = [*columns, "_reject_reason"]
    return pa.table({name: pa.array([], pa.string()) for name in names})


def parse_event_times(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Event times as UTC microseconds; NULL where a value cannot be parsed.

    ISO 8601 text with or without an offset (no offset means UTC), or numeric epoch seconds.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        micros = pc.cast(pc.multiply(pc.cast(values, pa.float64()), 1_000_000.0), pa.int64())
        return micros.cast(EVENT_TIME_TYPE)
    try:
        return pc.cast(values, EVENT_TIME_TYPE)
    except pa.ArrowInvalid:
        pass
    try:
        return pc.cast(values, pa.timestamp("us")).cast(EVENT_TIME_TYPE)
    except pa.ArrowInvalid:
        pass
    return pa.array([_parse_one(v) for v in values.to_pylist()], EVENT_TIME_TYPE)


def _parse_one(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed
