"""The node database as the agent opens it: one SQLite library (ADBC's) for every connection.

Python's `sqlite3` links a different SQLite than the ADBC driver. Two SQLite libraries in one
process on one WAL database break SQLite's locking (POSIX locks are per process): one copy can
truncate the shared-memory file the other has mapped, and the process dies with SIGBUS. So the
agent never opens the node database through `sqlite3`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import adbc_driver_sqlite.dbapi as adbc_sqlite

from edge_agent.errors import SourceError

Row = tuple[Any, ...]


def connect(path: Path) -> Any:
    """An ADBC connection to an existing database file (never creates one)."""
    return adbc_sqlite.connect(f"file:{path.resolve()}?mode=rw", autocommit=True)


class NodeDatabase:
    """Autocommit connection with explicit `BEGIN IMMEDIATE` transactions."""

    def __init__(self, path: Path, busy_timeout_seconds: float = 30.0) -> None:
        if not path.exists():
            raise SourceError(f"database file {path} does not exist")
        if not path.is_file():
            raise SourceError(f"database path {path} is not a file")
        self.path = path
        try:
            self._conn = connect(path)
            self._cursor = self._conn.cursor()
            self.query(f"PRAGMA busy_timeout = {int(busy_timeout_seconds * 1000)}")
            self.query("SELECT count(*) FROM sqlite_master")
        except adbc_sqlite.Error as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SourceError(
                f"database file {path} is not a readable SQLite database ({detail})"
            ) from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self._cursor.execute(sql, params or None)
        return [tuple(row) for row in self._cursor.fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """First column of the first row (aggregates always return one)."""
        row = self.one(sql, params)
        return row[0] if row else None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._cursor.execute(sql, params or None)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._cursor.executemany(sql, rows)

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
        self._cursor.close()
        self._conn.close()

    def __enter__(self) -> NodeDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
