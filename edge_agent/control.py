"""The agent's state inside the node database: pipeline type, run history, watermark, outbox.

Every change runs in a `BEGIN IMMEDIATE` transaction on a WAL database, so several agents and
`pipeline set` calls on the same node serialize instead of corrupting each other.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from edge_agent.contract import SCENARIOS, validate_scenario
from edge_agent.database import NodeDatabase
from edge_agent.source import SourceTable, quote_ident

DEFAULT_PIPELINE = "raw"

_DDL = f"""
CREATE TABLE IF NOT EXISTS pipeline_config (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    pipeline_type TEXT NOT NULL CHECK (pipeline_type IN ({", ".join(repr(s) for s in SCENARIOS)})),
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pipeline_executions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline_type TEXT NOT NULL,
    started_at TEXT NOT NULL,
    completed_at TEXT,
    status TEXT NOT NULL CHECK (status IN ('running', 'success', 'failed')),
    rows_read INTEGER NOT NULL DEFAULT 0,
    rows_uploaded INTEGER NOT NULL DEFAULT 0,
    rows_rejected INTEGER NOT NULL DEFAULT 0,
    objects_written INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    agent TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS upload_state (
    source_table TEXT PRIMARY KEY,
    watermark INTEGER NOT NULL,
    batch_namespace TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS upload_claims (
    source_table TEXT NOT NULL,
    start_key INTEGER NOT NULL,
    end_key INTEGER NOT NULL,
    row_count INTEGER NOT NULL,
    pipeline_type TEXT NOT NULL,
    bucket TEXT NOT NULL,
    owner TEXT NOT NULL,
    lease_expires_at REAL NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (source_table, start_key)
);
CREATE TABLE IF NOT EXISTS report_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    asset_key TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    claimed_until REAL NOT NULL DEFAULT 0
);
"""


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def agent_identity() -> str:
    """`host:pid:nonce`: who holds a claim, and whether that process can still be alive."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_alive(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True  # another machine: only the lease can tell
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


@dataclass(frozen=True)
class PipelineSetting:
    pipeline_type: str
    updated_at: str | None
    updated_by: str | None

    @property
    def is_default(self) -> bool:
        return self.updated_at is None


@dataclass(frozen=True)
class Claim:
    """An id range (start_key, end_key] one agent uploads; keys and bucket are fixed at claim."""

    source_table: str
    start_key: int
    end_key: int
    row_count: int
    pipeline_type: str
    bucket: str
    batch_id: str
    redo: bool


@dataclass(frozen=True)
class Execution:
    id: int
    pipeline_type: str
    started_at: str
    completed_at: str | None
    status: str
    rows_read: int
    rows_uploaded: int
    rows_rejected: int
    objects_written: int
    error: str | None
    agent: str


@dataclass(frozen=True)
class OutboxReport:
    id: int
    asset_key: str
    body: dict[str, object]


class ControlStore:
    """The agent's tables in the node database, behind one autocommit connection."""

    def __init__(self, db: NodeDatabase, owner: str | None = None) -> None:
        self.db = db
        self.owner = owner or agent_identity()
        db.execute("PRAGMA journal_mode=WAL")
        with db.transaction():
            for statement in filter(str.strip, _DDL.split(";")):
                db.execute(statement)

    def transaction(self) -> AbstractContextManager[NodeDatabase]:
        return self.db.transaction()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> ControlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- pipeline type -------------------------------------------------------------------
    def get_pipeline(self) -> PipelineSetting:
        row = self.db.one(
            "SELECT pipeline_type, updated_at, updated_by FROM pipeline_config WHERE id = 1"
        )
        return PipelineSetting(*row) if row else PipelineSetting(DEFAULT_PIPELINE, None, None)

    def set_pipeline(self, pipeline_type: str, updated_by: str) -> PipelineSetting:
        validate_scenario(pipeline_type)
        now = utc_now()
        with self.transaction() as db:
            db.execute(
                "INSERT INTO pipeline_config (id, pipeline_type, updated_at, updated_by) "
                "VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "pipeline_type = excluded.pipeline_type, updated_at = excluded.updated_at, "
                "updated_by = excluded.updated_by",
                (pipeline_type, now, updated_by),
            )
        return PipelineSetting(pipeline_type, now, updated_by)

    # -- execution history ---------------------------------------------------------------
    def start_execution(self, pipeline_type: str) -> int:
        with self.transaction() as db:
            row = db.one(
                "INSERT INTO pipeline_executions (pipeline_type, started_at, status, agent) "
                "VALUES (?, ?, 'running', ?) RETURNING id",
                (pipeline_type, utc_now(), self.owner),
            )
        assert row is not None
        return int(row[0])

    def finish_execution(
        self,
        execution_id: int,
        *,
        status: str,
        rows_read: int,
        rows_uploaded: int,
        rows_rejected: int,
        objects_written: int,
        error: str | None = None,
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE pipeline_executions SET completed_at = ?, status = ?, rows_read = ?, "
                "rows_uploaded = ?, rows_rejected = ?, objects_written = ?, error = ? WHERE id = ?",
                (
                    utc_now(),
                    status,
                    rows_read,
                    rows_uploaded,
                    rows_rejected,
                    objects_written,
                    error,
                    execution_id,
                ),
            )

    def history(self, limit: int) -> list[Execution]:
        rows = self.db.query(
            "SELECT id, pipeline_type, started_at, completed_at, status, rows_read, rows_uploaded, "
            "rows_rejected, objects_written, error, agent FROM pipeline_executions "
            "ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [Execution(*row) for row in rows]

    # -- watermark and claims ------------------------------------------------------------
    def _state(self, db: NodeDatabase, table: str) -> tuple[int, str]:
        row = db.one(
            "SELECT watermark, batch_namespace FROM upload_state WHERE source_table = ?", (table,)
        )
        if row:
            return int(row[0]), str(row[1])
        # The namespace keeps batch ids of two databases apart even if their node ids collide.
        namespace = uuid.uuid4().hex[:8]
        db.execute(
            "INSERT INTO upload_state (source_table, watermark, batch_namespace, updated_at) "
            "VALUES (?, 0, ?, ?)",
            (table, namespace, utc_now()),
        )
        return 0, namespace

    def watermark(self, table: str) -> int:
        row = self.db.one("SELECT watermark FROM upload_state WHERE source_table = ?", (table,))
        return int(row[0]) if row else 0

    def backlog(self, source: SourceTable) -> int:
        """Rows not yet covered by the watermark (claimed or not)."""
        key = quote_ident(source.key_column)
        return int(
            self.db.scalar(
                f"SELECT count(*) FROM {quote_ident(source.name)} WHERE {key} > ?",
                (self.watermark(source.name),),
            )
        )

    def claim_next(
        self,
        source: SourceTable,
        max_rows: int,
        bucket_for: Callable[[str], str],
        lease_seconds: float,
    ) -> Claim | None:
        """Take over an abandoned claim, or claim the next range of at most `max_rows` rows."""
        now = time.time()
        with self.transaction() as db:
            watermark, namespace = self._state(db, source.name)
            for row in db.query(
                "SELECT start_key, end_key, row_count, pipeline_type, bucket, owner, "
                "lease_expires_at FROM upload_claims WHERE source_table = ? AND done = 0 "
                "ORDER BY start_key",
                (source.name,),
            ):
                start, end, count, pipeline_type, bucket, owner, expires = row
                if owner == self.owner or (expires > now and _owner_alive(owner)):
                    continue
                db.execute(
                    "UPDATE upload_claims SET owner = ?, lease_expires_at = ? "
                    "WHERE source_table = ? AND start_key = ?",
                    (self.owner, now + lease_seconds, source.name, start),
                )
                return Claim(
                    source.name, start, end, count, pipeline_type, bucket,
                    _batch_id(namespace, start, end), redo=True,
                )  # fmt: skip
            last_claimed = db.scalar(
                "SELECT max(end_key) FROM upload_claims WHERE source_table = ?", (source.name,)
            )
            start = max(watermark, last_claimed or 0)
            table, key = quote_ident(source.name), quote_ident(source.key_column)
            end_row = db.one(
                f"SELECT {key} FROM {table} WHERE {key} > ? ORDER BY {key} LIMIT 1 OFFSET ?",
                (start, max_rows - 1),
            )
            if end_row is None:
                end_row = db.one(f"SELECT max({key}) FROM {table} WHERE {key} > ?", (start,))
            if end_row is None or end_row[0] is None:
                return None
            end = int(end_row[0])
            count = int(
                db.scalar(
                    f"SELECT count(*) FROM {table} WHERE {key} > ? AND {key} <= ?", (start, end)
                )
            )
            pipeline_type = self.get_pipeline().pipeline_type
            bucket = bucket_for(pipeline_type)
            db.execute(
                "INSERT INTO upload_claims (source_table, start_key, end_key, row_count, "
                "pipeline_type, bucket, owner, lease_expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (source.name, start, end, count, pipeline_type, bucket, self.owner,
                 now + lease_seconds),
            )  # fmt: skip
            return Claim(
                source.name, start, end, count, pipeline_type, bucket,
                _batch_id(namespace, start, end), redo=False,
            )  # fmt: skip

    def move_claim(self, claim: Claim, bucket: str) -> Claim:
        """Point an unfinished claim of this agent at another bucket (none of its objects exist)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE upload_claims SET bucket = ? WHERE source_table = ? AND start_key = ? "
                "AND owner = ? AND done = 0",
                (bucket, claim.source_table, claim.start_key, self.owner),
            )
        return replace(claim, bucket=bucket)

    def complete_claim(self, claim: Claim, reports: list[tuple[str, dict[str, object]]]) -> int:
        """Mark a claim uploaded, queue its reports, and move the watermark; returns it."""
        with self.transaction() as db:
            row = db.one(
                "SELECT done FROM upload_claims WHERE source_table = ? AND start_key = ?",
                (claim.source_table, claim.start_key),
            )
            if row is not None and not row[0]:
                db.execute(
                    "UPDATE upload_claims SET done = 1 WHERE source_table = ? AND start_key = ?",
                    (claim.source_table, claim.start_key),
                )
                db.executemany(
                    "INSERT INTO report_outbox (asset_key, body, created_at) VALUES (?, ?, ?)",
                    [(key, json.dumps(body, sort_keys=True), utc_now()) for key, body in reports],
                )
            watermark, _ = self._state(db, claim.source_table)
            while True:
                done = db.one(
                    "SELECT end_key FROM upload_claims WHERE source_table = ? AND start_key = ? "
                    "AND done = 1",
                    (claim.source_table, watermark),
                )
                if done is None:
                    break
                db.execute(
                    "DELETE FROM upload_claims WHERE source_table = ? AND start_key = ?",
                    (claim.source_table, watermark),
                )
                watermark = int(done[0])
            db.execute(
                "UPDATE upload_state SET watermark = ?, updated_at = ? WHERE source_table = ?",
                (watermark, utc_now(), claim.source_table),
            )
        return watermark

    def release_claims(self) -> None:
        """Give up this agent's unfinished claims so the next attempt redoes them at once."""
        with self.transaction() as db:
            db.execute(
                "UPDATE upload_claims SET lease_expires_at = 0 WHERE owner = ? AND done = 0",
                (self.owner,),
            )

    # -- report outbox -------------------------------------------------------------------
    def take_reports(self, limit: int, hold_seconds: float = 60.0) -> list[OutboxReport]:
        now = time.time()
        with self.transaction() as db:
            rows = db.query(
                "SELECT id, asset_key, body FROM report_outbox WHERE claimed_until < ? "
                "ORDER BY id LIMIT ?",
                (now, limit),
            )
            db.executemany(
                "UPDATE report_outbox SET claimed_until = ? WHERE id = ?",
                [(now + hold_seconds, row[0]) for row in rows],
            )
        return [OutboxReport(row[0], row[1], json.loads(row[2])) for row in rows]

    def report_delivered(self, report_id: int) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM report_outbox WHERE id = ?", (report_id,))

    def report_failed(self, report_id: int, error: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE report_outbox SET attempts = attempts + 1, last_error = ?, "
                "claimed_until = 0 WHERE id = ?",
                (error, report_id),
            )

    def defer_report(self, report_id: int, until: float) -> None:
        """Not offered again before `until` (epoch seconds); not counted as a failed attempt."""
        with self.transaction() as db:
            db.execute(
                "UPDATE report_outbox SET claimed_until = ? WHERE id = ?", (until, report_id)
            )

    def pending_reports(self) -> int:
        return int(self.db.scalar("SELECT count(*) FROM report_outbox"))


def _batch_id(namespace: str, start: int, end: int) -> str:
    """Deterministic per claim, so a retried upload overwrites its own objects."""
    return f"{namespace}-{start + 1:012d}-{end:012d}"
