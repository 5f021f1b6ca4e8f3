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
    claimed_until REAL NOT NULL DEFAULT 0,
    claimed_by TEXT,
    rejections INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER
);
CREATE TABLE IF NOT EXISTS report_dead_letters (
    id INTEGER PRIMARY KEY,
    asset_key TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    rejections INTEGER NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    dead_at TEXT NOT NULL
);
"""

# Columns added to a table after nodes already had it: added in place when missing.
_ADDED_COLUMNS = {
    "report_outbox": {
        "claimed_by": "TEXT",
        "rejections": "INTEGER NOT NULL DEFAULT 0",
        "last_status": "INTEGER",
    },
}


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


@dataclass(frozen=True)
class DeadLetter:
    """A report Dagster refused `rejections` times, kept out of the queue until requeued."""

    id: int
    asset_key: str
    partition: str | None
    attempts: int
    rejections: int
    last_status: int | None
    last_error: str | None
    dead_at: str


class ControlStore:
    """The agent's tables in the node database, behind one autocommit connection."""

    def __init__(self, db: NodeDatabase, owner: str | None = None) -> None:
        self.db = db
        self.owner = owner or agent_identity()
        db.execute("PRAGMA journal_mode=WAL")
        with db.transaction():
            for statement in filter(str.strip, _DDL.split(";")):
                db.execute(statement)
            for table, columns in _ADDED_COLUMNS.items():
                present = {row[1] for row in db.query(f"PRAGMA table_info({table})")}
                for name, declaration in columns.items():
                    if name not in present:
                        db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")

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
    # A report is claimed by one agent at a time (claimed_by, claimed_until), so two agents on
    # one node never send the same report; a claim of a process that is gone is taken over.
    def take_reports(
        self, limit: int, hold_seconds: float, after_id: int = 0
    ) -> list[OutboxReport]:
        """Claim the next reports (ids above `after_id`) for `hold_seconds`."""
        now = time.time()
        with self.transaction() as db:
            holders = db.query(
                "SELECT DISTINCT claimed_by FROM report_outbox WHERE claimed_until >= ? "
                "AND claimed_by IS NOT NULL AND claimed_by != ?",
                (now, self.owner),
            )
            db.executemany(
                "UPDATE report_outbox SET claimed_until = 0, claimed_by = NULL "
                "WHERE claimed_by = ?",
                [(owner,) for (owner,) in holders if not _owner_alive(owner)],
            )
            rows = db.query(
                "SELECT id, asset_key, body FROM report_outbox WHERE claimed_until < ? "
                "AND id > ? ORDER BY id LIMIT ?",
                (now, after_id, limit),
            )
            db.executemany(
                "UPDATE report_outbox SET claimed_until = ?, claimed_by = ? WHERE id = ?",
                [(now + hold_seconds, self.owner, row[0]) for row in rows],
            )
        return [OutboxReport(row[0], row[1], json.loads(row[2])) for row in rows]

    def renew_report(self, report_id: int, hold_seconds: float) -> bool:
        """Keep this agent's claim on a report for at least `hold_seconds` more, right before
        sending it; False when the claim lapsed (another agent may hold it now): do not send."""
        now = time.time()
        with self.transaction() as db:
            row = db.one(
                "UPDATE report_outbox SET claimed_until = max(claimed_until, ?) "
                "WHERE id = ? AND claimed_by = ? AND claimed_until >= ? RETURNING id",
                (now + hold_seconds, report_id, self.owner, now),
            )
        return row is not None

    def report_delivered(self, report_id: int) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM report_outbox WHERE id = ?", (report_id,))

    def report_failed(self, report_id: int, error: str, status: int | None = None) -> None:
        """A transient failure: the report stays queued, free for the next attempt."""
        with self.transaction() as db:
            db.execute(
                "UPDATE report_outbox SET attempts = attempts + 1, last_error = ?, "
                "last_status = ?, claimed_until = 0, claimed_by = NULL WHERE id = ?",
                (error, status, report_id),
            )

    def report_rejected(self, report_id: int, status: int, error: str, max_rejections: int) -> int:
        """Dagster refused the report for good; after `max_rejections` such answers it moves
        to the dead letters. Returns how many times it has been refused."""
        with self.transaction() as db:
            row = db.one(
                "UPDATE report_outbox SET attempts = attempts + 1, rejections = rejections + 1, "
                "last_status = ?, last_error = ?, claimed_until = 0, claimed_by = NULL "
                "WHERE id = ? RETURNING rejections",
                (status, error, report_id),
            )
            rejections = int(row[0]) if row else 0
            if row is not None and rejections >= max_rejections:
                db.execute(
                    "INSERT INTO report_dead_letters (id, asset_key, body, created_at, attempts, "
                    "rejections, last_status, last_error, dead_at) SELECT id, asset_key, body, "
                    "created_at, attempts, rejections, last_status, last_error, ? "
                    "FROM report_outbox WHERE id = ?",
                    (utc_now(), report_id),
                )
                db.execute("DELETE FROM report_outbox WHERE id = ?", (report_id,))
        return rejections

    def release_reports(self, report_ids: list[int]) -> None:
        """Give back claimed reports that were not attempted; no attempt is counted."""
        with self.transaction() as db:
            db.executemany(
                "UPDATE report_outbox SET claimed_until = 0, claimed_by = NULL "
                "WHERE id = ? AND claimed_by = ?",
                [(report_id, self.owner) for report_id in report_ids],
            )

    def defer_report(self, report_id: int, until: float) -> None:
        """Not offered again before `until` (epoch seconds); not counted as a failed attempt."""
        with self.transaction() as db:
            db.execute(
                "UPDATE report_outbox SET claimed_until = ?, claimed_by = NULL WHERE id = ?",
                (until, report_id),
            )

    def pending_reports(self) -> int:
        return int(self.db.scalar("SELECT count(*) FROM report_outbox"))

    def dead_letter_count(self) -> int:
        return int(self.db.scalar("SELECT count(*) FROM report_dead_letters"))

    def dead_letters(self, limit: int) -> list[DeadLetter]:
        rows = self.db.query(
            "SELECT id, asset_key, json_extract(body, '$.partition'), attempts, rejections, "
            "last_status, last_error, dead_at FROM report_dead_letters ORDER BY id LIMIT ?",
            (limit,),
        )
        return [DeadLetter(*row) for row in rows]

    def requeue_dead_letters(self, report_ids: list[int] | None = None) -> int:
        """Move dead letters (all, or those named) back into the queue with a fresh count of
        refusals; returns how many moved."""
        where, params = "", ()
        if report_ids is not None:
            where = f"WHERE id IN ({', '.join('?' * len(report_ids))})"
            params = tuple(report_ids)
        with self.transaction() as db:
            moved = db.query(
                "INSERT INTO report_outbox (id, asset_key, body, created_at, attempts, "
                "last_error, last_status) SELECT id, asset_key, body, created_at, attempts, "
                f"last_error, last_status FROM report_dead_letters {where} RETURNING id",
                params,
            )
            db.executemany(
                "DELETE FROM report_dead_letters WHERE id = ?", [(row[0],) for row in moved]
            )
        return len(moved)


def _batch_id(namespace: str, start: int, end: int) -> str:
    """Deterministic per claim, so a retried upload overwrites its own objects."""
    return f"{namespace}-{start + 1:012d}-{end:012d}"
