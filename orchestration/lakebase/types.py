"""Column types from the DuckDB warehouse to PostgreSQL, as the bulk COPY writes them."""

from __future__ import annotations

import re

# DuckDB type -> (PostgreSQL type as format_type() prints it, DuckDB cast on the way or None)
_EXACT: dict[str, tuple[str, str | None]] = {
    "BIGINT": ("bigint", None),
    "INTEGER": ("integer", None),
    "SMALLINT": ("smallint", None),
    "TINYINT": ("smallint", "SMALLINT"),
    "UTINYINT": ("smallint", "SMALLINT"),
    "USMALLINT": ("integer", "INTEGER"),
    "UINTEGER": ("bigint", "BIGINT"),
    "UBIGINT": ("bigint", "BIGINT"),  # a value past 2^63 fails the sync loudly
    "HUGEINT": ("bigint", "BIGINT"),  # DuckDB's sum() of integers; same
    "DOUBLE": ("double precision", None),
    "FLOAT": ("real", None),
    "BOOLEAN": ("boolean", None),
    "VARCHAR": ("text", None),
    "DATE": ("date", None),
    "TIMESTAMP": ("timestamp without time zone", None),
    "TIMESTAMP_S": ("timestamp without time zone", "TIMESTAMP"),
    "TIMESTAMP_MS": ("timestamp without time zone", "TIMESTAMP"),
    "TIMESTAMP_NS": ("timestamp without time zone", "TIMESTAMP"),
    "TIMESTAMP WITH TIME ZONE": ("timestamp with time zone", None),
    "BLOB": ("bytea", None),
}
_DECIMAL = re.compile(r"^DECIMAL\(\d+,\s*\d+\)$")


def postgres_type(duckdb_type: str) -> tuple[str, str | None]:
    """The PostgreSQL column type for a DuckDB type, and the cast DuckDB applies first."""
    if duckdb_type in _EXACT:
        return _EXACT[duckdb_type]
    if _DECIMAL.match(duckdb_type):
        return "double precision", "DOUBLE"
    return "text", "VARCHAR"  # anything else (UUID, INTERVAL, LIST, ...) travels as text
