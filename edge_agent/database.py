"""The node database as the agent opens it: one SQLite library (ADBC's) for every connection.

Python's `sqlite3` links a different SQLite than the ADBC driver. Two SQLite libraries in one
process on one WAL database break SQLite's locking (POSIX locks are per process): one copy can
truncate the shared-memory file the other has mapped, and the process dies with SIGBUS. So the
agent never opens the node database through `sqlite3`.

ADBC's low-level API is used rather than its DB-API module, which imports `pyarrow.dataset` and
through it pandas when installed: over a second of start-up for every `upload --once`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import adbc_driver_manager as adbc
import adbc_driver_sqlite
import pyarrow as pa

from edge_agent.errors import SourceError

Row = tuple[Any, ...]
DatabaseError = adbc.Error


class AdbcSqlite:
    """One ADBC SQLite connection (autocommit): SQL with `?` parameters in, Arrow out."""

    def __init__(self, path: Path) -> None:
        self._database = adbc_driver_sqlite.connect(f"file:{path.resolve()}?mode=rw")
        try:
            self._connection = adbc.AdbcConnection(self._database)
        except BaseException:
            self._database.close()
            raise

    def arrow(
        self, sql: str, params: Sequence[Any] = (), batch_rows: int | None = None
    ) -> pa.Table:
        statement = adbc.AdbcStatement(self._connection)
        try:
            statement.set_sql_query(sql)
            if batch_rows is not None:
                statement.set_options(**{"adbc.sqlite.query.batch_rows": str(max(batch_rows, 1))})
            if params:
                statement.bind(_parameters([[value] for value in params]))
            handle, _ = statement.execute_query()
            return pa.RecordBatchReader.from_stream(handle).read_all()
        finally:
            statement.close()

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        statement = adbc.AdbcStatement(self._connection)
        try:
            statement.set_sql_query(sql)
            statement.bind(_parameters([list(column) for column in zip(*rows, strict=True)]))
            statement.execute_update()
        finally:
            statement.close()

    def close(self) -> None:
        self._connection.close()
        self._database.close()


def _parameters(columns: list[list[Any]]) -> pa.RecordBatch:
    return pa.record_batch(
        [pa.array(values) for values in columns], names=[f"p{i}" for i in range(len(columns))]
    )


class NodeDatabase:
    """The agent's control connection, with explicit `BEGIN IMMEDIATE` transactions."""

    def __init__(self, path: Path, busy_timeout_seconds: float = 30.0) -> None:
        if not path.exists():
            raise SourceError(f"database file {path} does not exist")
        if not path.is_file():
            raise SourceError(f"database path {path} is not a file")
        self.path = path
        try:
            self._sql = AdbcSqlite(path)
            self.query(f"PRAGMA busy_timeout = {int(busy_timeout_seconds * 1000)}")
            self.query("SELECT count(*) FROM sqlite_master")
        except DatabaseError as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SourceError(
                f"database file {path} is not a readable SQLite database ({detail})"
            ) from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        table = self._sql.arrow(sql, params)
        columns = [column.to_pylist() for column in table.columns]
        return list(zip(*columns, strict=True)) if columns else []

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """First column of the first row (aggregates always return one)."""
        row = self.one(sql, params)
        return row[0] if row else None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._sql.arrow(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._sql.executemany(sql, rows)

    @contextmanager
    def transaction(self) -> Iterator[NodeDatabase]:
        self.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")

    def close(self) -> None:
        self._sql.close()

    def __enter__(self) -> NodeDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
