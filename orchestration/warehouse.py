"""The DuckDB warehouse: one file per environment, tables `{catalog}.{schema}.{layer}_{entity}`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from orchestration.home import dagster_home, make_private, owner_only_files, private_directory
from orchestration.settings import EnvironmentSettings, environment_settings


def quote(name: str) -> str:
    """A DuckDB identifier, quoted: names from data never reach SQL unquoted."""
    if "\x00" in name:
        raise ValueError(f"identifier {name!r} contains a NUL byte")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A SQL string literal: single quotes doubled, so data can never end the string early."""
    if "\x00" in text:
        raise ValueError(f"text {text!r} contains a NUL byte")
    return "'" + text.replace("'", "''") + "'"


class Warehouse(DuckDBResource):
    """dagster-duckdb's DuckDB resource with the warehouse file attached under the environment's
    catalog, the schema current, UTC, and a wait for another writer's lock. The file is under
    DAGSTER_HOME by default; one writer at a time (the `warehouse` pool)."""

    database: str = Field(
        default=":memory:",
        description="The session's own database (dagster-duckdb's); the warehouse file "
        "(database_path) is attached to it under the catalog name",
    )
    database_path: str | None = Field(
        default=None, description="The warehouse file; $DAGSTER_HOME/warehouse_<env>.duckdb"
    )
    lock_timeout_seconds: float = Field(default=120.0, gt=0)
    environment: str = Field(
        default="dev", description="the environment whose catalog and schema the file holds"
    )

    def settings(self) -> EnvironmentSettings:
        return environment_settings(self.environment)

    def path(self) -> Path:
        if self.database_path:
            return Path(self.database_path)
        return dagster_home() / f"warehouse_{self.settings().name}.duckdb"

    def staging_path(self) -> Path:
        """Where loads stage objects on local disk: beside the warehouse file, owner-only."""
        return self.path().parent / f"staging_{self.settings().name}"

    def table(self, layer: str, entity: str) -> str:
        """Quoted, fully qualified name for SQL."""
        s = self.settings()
        return f"{quote(s.catalog)}.{quote(s.schema)}.{quote(f'{layer}_{entity}')}"

    def display_name(self, layer: str, entity: str) -> str:
        return self.settings().table_name(layer, entity)

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection with the catalog attached and the schema current, in UTC. Files made
        while it is open (the warehouse file, its WAL, bronze's staged objects) are owner-only."""
        s = self.settings()
        path = self.path()
        private_directory(path.parent)
        # dagster-duckdb closes its connection only when the block ends without an exception;
        # a failing asset must not leave the file attached (a later ATTACH would conflict).
        # DuckDB makes the WAL on the first write, long after ATTACH: only a umask held for the
        # whole connection keeps it private (as root the home is 0711, so names can be reached).
        with owner_only_files(), self.get_connection() as conn, closing(conn):
            deadline = time.monotonic() + self.lock_timeout_seconds
            mode = " (READ_ONLY)" if read_only else ""
            while True:
                try:
                    conn.execute(f"ATTACH {quote_literal(str(path))} AS {quote(s.catalog)}{mode}")
                    break
                except duckdb.IOException as exc:  # another process holds the write lock
                    if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            make_private(path, path.with_name(path.name + ".wal"))
            conn.execute("SET TimeZone = 'UTC'")
            if not read_only:
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(s.catalog)}.{quote(s.schema)}")
            conn.execute(f"USE {quote(s.catalog)}.{quote(s.schema)}")
            yield conn


def table_exists(conn: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ? "
        "AND table_schema = current_schema() AND table_catalog = current_database()",
        [name],
    ).fetchone()
    return bool(row and row[0])


def create_table_like(
    conn: duckdb.DuckDBPyConnection, table: str, select: str, params: object = None
) -> None:
    """CREATE TABLE with the columns `select` yields, declared explicitly.

    Not `CREATE TABLE ... AS SELECT ... LIMIT 0`: in DuckDB 1.5.5, a table created that way
    inside a transaction silently loses a later insert of more than one row group (122,880
    rows) in the same transaction, even after COMMIT.
    """
    conn.execute(f"CREATE OR REPLACE TEMP TABLE __shape AS {select} LIMIT 0", params)
    columns = conn.execute("DESCRIBE __shape").fetchall()
    conn.execute("DROP TABLE __shape")
    ddl = ", ".join(f"{quote(name)} {kind}" for name, kind, *_ in columns)
    conn.execute(f"CREATE TABLE IF NOT EXISTS {quote(table)} ({ddl})")
