"""The applications' read-only roles: one per environment schema, and the session limits on them.

PostgreSQL lets any session `SET` a user-settable parameter, `statement_timeout` and
`idle_in_transaction_session_timeout` included: `ALTER ROLE ... SET` is only the session's
default, and `GRANT SET ON PARAMETER` can add the right to set a superuser parameter but cannot
take it away from a user-settable one. So the limits are set as the role's defaults and also
enforced by the sync itself: before it takes a lock readers could hold, it ends the role's
sessions that are past a limit (what the server would have done had they not set it away).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from orchestration.lakebase.target import MAX_IDENTIFIER_BYTES, ident

TERMINATE_WAIT_MS = 2000  # how long to wait for an ended session to release its locks


@dataclass(frozen=True)
class SessionLimits:
    """How long an application session may run one statement, or sit idle in a transaction."""

    statement_ms: int
    idle_in_transaction_ms: int


def app_role_for(base: str, schema: str) -> str:
    """The read-only role of one environment's schema: `<base>_<schema>`."""
    role = f"{base}_{schema}"
    if len(role.encode()) > MAX_IDENTIFIER_BYTES:
        raise ValueError(
            f"application role {role!r} is longer than PostgreSQL's {MAX_IDENTIFIER_BYTES} "
            "bytes: choose a shorter app_role"
        )
    return role


def ensure_app_role(
    conn: psycopg.Connection,
    role: str,
    schema: str,
    limits: SessionLimits,
    owns_server: bool,
    shared_role: str | None = None,
) -> None:
    """`role` (LOGIN) reads `schema` and nothing else of this database, within `limits`; with
    `owns_server`, it cannot connect to the server's other databases either. `shared_role`:
    the one role every environment shared before roles were per schema; it loses `schema`."""
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone() is None:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident(role)))
    database = conn.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
    can_connect = conn.execute("SELECT has_database_privilege(%s, %s, 'CONNECT')", [role, database])
    if not can_connect.fetchone()[0]:  # type: ignore[index]  # PUBLIC's grant, unless revoked
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(ident(database), ident(role))
        )
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(ident(schema), ident(role)))
    for name, value in (
        ("statement_timeout", limits.statement_ms),
        ("idle_in_transaction_session_timeout", limits.idle_in_transaction_ms),
    ):  # the role's defaults: what a session has unless it SETs otherwise
        conn.execute(
            sql.SQL("ALTER ROLE {} SET {} = {}").format(
                ident(role), ident(name), sql.Literal(f"{int(value)}ms")
            )
        )
    _restrict(conn, database, role)
    if owns_server:
        _close_other_databases(conn, database, role)
    if shared_role and shared_role != role:
        _revoke_shared(conn, shared_role, schema)


def _revoke_shared(conn: psycopg.Connection, shared: str, schema: str) -> None:
    """The shared role of earlier versions reads no environment's schema any more (it stays,
    with its password, for an operator to drop: a role may own things elsewhere)."""
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [shared]).fetchone() is None:
        return
    conn.execute(
        sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(
            ident(schema), ident(shared)
        )
    )
    conn.execute(sql.SQL("REVOKE USAGE ON SCHEMA {} FROM {}").format(ident(schema), ident(shared)))


def _restrict(conn: psycopg.Connection, database: str, role: str) -> None:
    """Applications read; they do not stall the syncs or leave objects behind. With SELECT
    only, LOCK TABLE allows just ACCESS SHARE (what a SELECT takes). Temporary tables, new
    schemas and tables in `public` are refused: the grants PUBLIC has by default (TEMP, and
    CREATE on `public` before PostgreSQL 15) are revoked, since this database is the synced
    tables' own."""
    on_database = ident(database)
    for grantee in (sql.SQL("PUBLIC"), ident(role)):
        conn.execute(
            sql.SQL("REVOKE TEMPORARY, CREATE ON DATABASE {} FROM {}").format(on_database, grantee)
        )
    if conn.execute("SELECT to_regnamespace('public')").fetchone()[0] is not None:  # type: ignore[index]
        for grantee in (sql.SQL("PUBLIC"), ident(role)):
            conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA public FROM {}").format(grantee))


def _close_other_databases(conn: psycopg.Connection, database: str, role: str) -> None:
    """On a server the project owns (the embedded one), only its database is open to the app
    roles: every database grants CONNECT to PUBLIC by default, so it is revoked there."""
    others = conn.execute(
        "SELECT datname FROM pg_database WHERE datname <> %s AND datallowconn", [database]
    ).fetchall()
    for (other,) in others:
        for grantee in (sql.SQL("PUBLIC"), ident(role)):
            conn.execute(
                sql.SQL("REVOKE CONNECT ON DATABASE {} FROM {}").format(ident(other), grantee)
            )


def end_overdue_sessions(conn: psycopg.Connection, role: str, limits: SessionLimits) -> int:
    """End `role`'s sessions running one statement longer than its limit or idle in a
    transaction longer than its limit, even if they SET their timeouts away; the number ended.
    Sessions this connection may not signal (no pg_signal_backend) are left alone."""
    overdue = conn.execute(
        "SELECT pid FROM pg_stat_activity a WHERE usename = %s AND pid <> pg_backend_pid() "
        "AND (pg_has_role(a.usesysid, 'USAGE') OR pg_has_role('pg_signal_backend', 'USAGE')) "
        "AND ((state = 'active' AND query_start < now() - make_interval(secs => %s)) "
        "OR (state LIKE 'idle in transaction%%' "
        "AND state_change < now() - make_interval(secs => %s)))",
        [role, limits.statement_ms / 1000, limits.idle_in_transaction_ms / 1000],
    ).fetchall()
    ended = 0
    for (pid,) in overdue:
        row = conn.execute("SELECT pg_terminate_backend(%s, %s)", [pid, TERMINATE_WAIT_MS])
        ended += bool(row.fetchone()[0])  # type: ignore[index]
    return ended
