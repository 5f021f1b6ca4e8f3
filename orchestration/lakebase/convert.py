"""Databricks SQL -> PostgreSQL for a folder of query files (sqlglot, deterministic), and the
proof: every converted query is run against the synced tables."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import sqlglot
from psycopg import sql
from sqlglot.errors import ErrorLevel, SqlglotError

from orchestration.home import write_private

QUERIES = Path(__file__).with_name("queries")


@dataclass
class Conversion:
    name: str
    source: str
    postgres: str | None = None
    error: str | None = None  # why it could not be converted
    rows: int | None = None  # rows the converted query returned on the synced tables
    milliseconds: float | None = None
    run_error: str | None = None

    @property
    def proven(self) -> bool:
        return self.postgres is not None and self.run_error is None and self.rows is not None


def convert(text: str) -> str:
    """One Databricks SQL statement as PostgreSQL; raises on anything sqlglot cannot carry."""
    statements = sqlglot.transpile(
        text, read="databricks", write="postgres", pretty=True, unsupported_level=ErrorLevel.RAISE
    )
    if len(statements) != 1:
        raise ValueError(f"expected one statement, found {len(statements)}")
    return statements[0]


def convert_folder(folder: Path = QUERIES) -> list[Conversion]:
    out = []
    for path in sorted(folder.glob("*.sql")):
        item = Conversion(path.stem, path.read_text())
        try:
            item.postgres = convert(item.source)
        except (SqlglotError, ValueError) as exc:
            item.error = str(exc).splitlines()[0][:300]
        out.append(item)
    return out


def prove(conn: psycopg.Connection, schema: str, conversions: list[Conversion]) -> None:
    """Run each converted query (read-only, against `schema`); record rows, time or error."""
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    conn.execute("SET TRANSACTION READ ONLY")
    for item in conversions:
        if item.postgres is None:
            continue
        started = time.perf_counter()
        try:
            with conn.transaction():  # a failing query must not spoil the next
                rows = conn.execute(item.postgres.encode()).fetchall()
        except psycopg.Error as exc:
            item.run_error = str(exc).splitlines()[0][:300]
            continue
        item.milliseconds = (time.perf_counter() - started) * 1000
        item.rows = len(rows)


def write_converted(conversions: list[Conversion], directory: Path) -> None:
    for item in conversions:
        if item.postgres is not None:
            write_private(directory / f"{item.name}.sql", item.postgres + "\n")
