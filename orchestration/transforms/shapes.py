"""The columns a layer's SQL yields, known before any data exists: each table asset's
definition carries its column schema, so the UI shows it before the first run."""

from __future__ import annotations

from functools import cache

import duckdb

from orchestration.transforms.silver import COLUMNS, SILVER_TABLE


@cache
def select_columns(select: str) -> tuple[tuple[str, str], ...]:
    """(name, DuckDB type) of each column `select` yields over an empty silver table."""
    with duckdb.connect() as conn:
        conn.execute("SET TimeZone = 'UTC'")
        ddl = ", ".join(f'"{name}" {kind}' for name, kind, _ in COLUMNS)
        conn.execute(f"CREATE TABLE {SILVER_TABLE} ({ddl}, source_scenario VARCHAR)")
        described = conn.execute(
            f"DESCRIBE {select}", {"start": None, "end": None} if "$start" in select else None
        ).fetchall()
    return tuple((name, kind) for name, kind, *_ in described)
