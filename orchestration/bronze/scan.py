"""The bulk path: staged objects that share one schema are loaded by a single DuckDB scan."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from orchestration.warehouse import quote


@dataclass(frozen=True)
class Footer:
    """What a staged object's Parquet footer says: its rows and its columns with their types."""

    rows: int
    signature: str
    schema: pa.Schema


class ScanError(Exception):
    """DuckDB could not scan the staged objects: the load is redone object by object."""


def read_footer(path: Path) -> Footer | None:
    """The footer of a local Parquet file, or None if it is unreadable.

    Read with pyarrow, not DuckDB: a DuckDB error inside the load's transaction would abort it.
    """
    try:
        metadata = pq.read_metadata(path)
    except (pa.ArrowInvalid, OSError):
        return None
    schema = metadata.schema.to_arrow_schema()
    return Footer(metadata.num_rows, str(schema), schema)


def empty_table(conn: duckdb.DuckDBPyConnection, path: Path) -> pa.Table:
    """No rows, the columns and types DuckDB reads from this file (and every file like it)."""
    return conn.execute(
        "SELECT * FROM read_parquet(?, hive_partitioning = false) LIMIT 0", [str(path)]
    ).to_arrow_table()


def insert_scan(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    columns: list[str],
    lineage: pa.Table,
    ingested_at: datetime,
) -> None:
    """INSERT every row of the files named in `lineage.path`, with each file's lineage columns.

    `columns` are the data columns to keep; the table already has every column inserted.
    """
    lineage_columns = [name for name in lineage.column_names if name != "path"]
    select = ", ".join(
        [f"p.{quote(name)}" for name in columns] + [f"l.{quote(name)}" for name in lineage_columns]
    )
    params: dict[str, Any] = {"paths": lineage.column("path").to_pylist(), "at": ingested_at}
    conn.register("bronze_lineage", lineage)
    try:
        conn.execute(
            f"INSERT INTO {quote(table)} BY NAME SELECT {select}, $at AS _ingested_at "
            "FROM read_parquet($paths, filename = true, hive_partitioning = false) p "
            "JOIN bronze_lineage l ON p.filename = l.path",
            params,
        )
    except duckdb.Error as exc:
        raise ScanError(str(exc)) from exc
    conn.unregister("bronze_lineage")  # on failure the caller rolls back, and this goes too
