"""Loading bronze partitions into DuckDB: verify, reconcile schemas, replace partitions."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from edge_agent.batches import schema_fingerprint as fingerprint
from orchestration.bronze.direct import enable_s3, etag_verifies, one_schema
from orchestration.bronze.objects import (
    QuarantinedObject,
    fetch_in_order,
    fetch_sidecars,
    row_count_mismatch,
)
from orchestration.bronze.schema import (
    RESCUED_COLUMN,
    NewColumnsRefusedError,
    SchemaConflictError,
    SchemaMode,
    reconcile,
)
from orchestration.landing.objects import LandingObject, list_hour
from orchestration.warehouse import create_table_like, quote, table_exists

LINEAGE_COLUMNS = (
    "_source_object",
    "_node_id",
    "_region",
    "_batch_id",
    "_partition_hour",
    "_ingested_at",
)
OBJECT_LINEAGE = LINEAGE_COLUMNS[:-1]  # per object; `_ingested_at` is one value per load
LINEAGE_TYPES = {
    "_partition_hour": pa.timestamp("us", "UTC"),
    "_ingested_at": pa.timestamp("us", "UTC"),
}
BOOKKEEPING_DDL = (
    """CREATE TABLE IF NOT EXISTS _bronze_loads (
        table_name VARCHAR, partition_key VARCHAR, object_uri VARCHAR, etag VARCHAR,
        sha256 VARCHAR, row_count BIGINT, schema_fingerprint VARCHAR,
        loaded_at TIMESTAMPTZ, run_id VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS _bronze_quarantine (
        table_name VARCHAR, partition_key VARCHAR, object_uri VARCHAR, reason VARCHAR,
        detected_at TIMESTAMPTZ, run_id VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS _schema_versions (
        table_name VARCHAR, version INTEGER, fingerprint VARCHAR, columns VARCHAR,
        change VARCHAR, mode VARCHAR, recorded_at TIMESTAMPTZ, run_id VARCHAR)""",
)


@dataclass(frozen=True)
class PartitionTarget:
    partition_key: str
    hour: datetime
    bucket: str
    region: str | None = None  # regional bronze is also split by region


@dataclass
class BronzeLoad:
    rows: int = 0
    objects: int = 0
    bytes: int = 0
    rescued_rows: int = 0
    objects_read_directly: int = 0
    quarantined: list[QuarantinedObject] = field(default_factory=list)
    rows_per_partition: dict[str, int] = field(default_factory=dict)
    schema_version: int = 0
    schema: pa.Schema | None = None
    added_columns: list[str] = field(default_factory=list)


class TooManyFilesError(Exception):
    pass


def _data_schema(conn: duckdb.DuckDBPyConnection, table: str) -> pa.Schema | None:
    if not table_exists(conn, table):
        return None
    schema = conn.execute(f"SELECT * FROM {quote(table)} LIMIT 0").to_arrow_table().schema
    hidden = {*LINEAGE_COLUMNS, RESCUED_COLUMN}
    return pa.schema([f for f in schema if f.name not in hidden])


def _lineage(obj: LandingObject, sidecar: dict[str, Any], target: PartitionTarget) -> dict:
    return {
        "_source_object": obj.uri,
        "_node_id": sidecar.get("node_id"),
        "_region": target.region or sidecar.get("region"),
        "_batch_id": sidecar.get("batch_id"),
        "_partition_hour": target.hour,
    }


def _with_lineage(
    batch: pa.Table, per_object: list[dict[str, Any]], rows: list[int], ingested_at: datetime
) -> pa.Table:
    """Lineage for every row, dictionary-encoded by object: a URI is stored once per object,
    not once per row, which keeps large loads from building gigabytes of repeated strings."""
    index = pa.concat_arrays(
        [pa.repeat(pa.scalar(i, pa.int32()), n) for i, n in enumerate(rows)]
    ) if rows else pa.array([], pa.int32())  # fmt: skip
    for name in LINEAGE_COLUMNS:
        if name == "_ingested_at":
            column = pa.repeat(pa.scalar(ingested_at, LINEAGE_TYPES[name]), batch.num_rows)
        elif name in LINEAGE_TYPES:
            column = pa.array([o[name] for o in per_object], LINEAGE_TYPES[name]).take(index)
        else:
            values = pa.array([o[name] for o in per_object], pa.string())
            column = pa.DictionaryArray.from_arrays(index, values)
        batch = batch.append_column(name, column)
    return batch


GROUP_ROWS = 1_000_000  # rows inserted per statement while later objects still download


class DirectReadError(Exception):
    """DuckDB could not read the objects directly: the load is redone object by object."""


def load_bronze(
    conn: duckdb.DuckDBPyConnection,
    *,
    client: Any,
    table: str,
    targets: list[PartitionTarget],
    mode: SchemaMode,
    run_id: str,
    max_files: int,
    region: str = "us-east-1",
    endpoint: str | None = None,
    direct: bool = True,
) -> BronzeLoad:
    """Replace each target partition with every verified object of its hour; one transaction.

    Objects whose ETag proves their content load in one DuckDB scan straight from S3; the others
    are downloaded, verified and reconciled one by one. A failure anywhere, including
    failOnNewColumns, rolls the whole load back and the partitions keep their old rows.
    """
    for ddl in BOOKKEEPING_DDL:
        conn.execute(ddl)
    with ThreadPoolExecutor(8) as pool:  # a backfill lists many hour prefixes
        hours = pool.map(lambda t: list_hour(client, t.bucket, t.hour), targets)
        listed = [(t, obj) for t, objects in zip(targets, hours, strict=True) for obj in objects]
    if len(listed) > max_files:
        raise TooManyFilesError(
            f"{len(listed)} objects in {len(targets)} partition(s) exceed this environment's "
            f"max_files_per_run ({max_files}); backfill a smaller range"
        )
    chosen: list[tuple[PartitionTarget, LandingObject, dict[str, Any]]] = []
    if direct and mode != "rescue" and listed and enable_s3(conn, region, endpoint):
        sidecars = fetch_sidecars(client, [obj for _, obj in listed])
        chosen = [
            (t, obj, sidecars[obj.uri])
            for t, obj in listed
            if obj.uri in sidecars and etag_verifies(obj, sidecars[obj.uri])
        ]
        if chosen and not one_schema(conn, [obj.uri for _, obj, _ in chosen]):
            chosen = []
    try:
        return _load(conn, client, table, targets, listed, chosen, mode, run_id)
    except DirectReadError:
        return _load(conn, client, table, targets, listed, [], mode, run_id)


def _load(
    conn: duckdb.DuckDBPyConnection,
    client: Any,
    table: str,
    targets: list[PartitionTarget],
    listed: list[tuple[PartitionTarget, LandingObject]],
    chosen: list[tuple[PartitionTarget, LandingObject, dict[str, Any]]],
    mode: SchemaMode,
    run_id: str,
) -> BronzeLoad:
    ingested_at = datetime.now(UTC)
    result = BronzeLoad(rows_per_partition={t.partition_key: 0 for t in targets})
    current = _data_schema(conn, table)
    before = fingerprint(current) if current is not None else None
    manifest: list[tuple[Any, ...]] = []
    direct_uris = {obj.uri for _, obj, _ in chosen}

    conn.execute("BEGIN TRANSACTION")
    try:
        _clear_partitions(conn, table, targets)
        if chosen:
            current = _load_direct(conn, table, chosen, current, mode, ingested_at, result,
                                   manifest, run_id, before)  # fmt: skip
        group = _Group()
        rest = [(t, obj) for t, obj in listed if obj.uri not in direct_uris]
        fetched = fetch_in_order(client, [obj for _, obj in rest])
        for (target, obj), outcome in zip(rest, fetched, strict=True):
            if isinstance(outcome, QuarantinedObject):
                result.quarantined.append(outcome)
                continue
            try:
                reconciled = reconcile(current, outcome.table, mode)
            except SchemaConflictError as exc:
                reason = f"schema cannot be reconciled: {exc}"
                result.quarantined.append(QuarantinedObject(obj, reason))
                continue
            except NewColumnsRefusedError as exc:
                raise NewColumnsRefusedError(
                    f"{exc} in {obj.uri} (schema mode failOnNewColumns)"
                ) from exc
            current = reconciled.schema
            result.added_columns += [f.name for f in reconciled.added if before is not None]
            result.rescued_rows += reconciled.rescued_rows
            group.add(reconciled.table, _lineage(outcome.obj, outcome.sidecar, target))
            rows = outcome.table.num_rows
            _count(result, target, rows, outcome.size)
            manifest.append(
                (table, target.partition_key, obj.uri, obj.etag,
                 outcome.sidecar["content_sha256"], rows, fingerprint(outcome.table.schema),
                 ingested_at, run_id)
            )  # fmt: skip
            if group.rows >= GROUP_ROWS:
                group.insert(conn, table, ingested_at)
        group.insert(conn, table, ingested_at)
        if manifest:
            conn.executemany(
                "INSERT INTO _bronze_loads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", manifest
            )
        partition_of = {obj.uri: t.partition_key for t, obj in listed}
        for q in result.quarantined:
            conn.execute(
                "INSERT INTO _bronze_quarantine VALUES (?, ?, ?, ?, ?, ?)",
                [table, partition_of[q.obj.uri], q.obj.uri, q.reason, ingested_at, run_id],
            )
        stored = _data_schema(conn, table)  # as DuckDB keeps it, so versions compare like with like
        result.schema = stored
        result.schema_version = _record_schema_version(conn, table, stored, mode, run_id)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return result


def _count(result: BronzeLoad, target: PartitionTarget, rows: int, size: int) -> None:
    result.rows += rows
    result.objects += 1
    result.bytes += size
    result.rows_per_partition[target.partition_key] += rows


def _load_direct(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    chosen: list[tuple[PartitionTarget, LandingObject, dict[str, Any]]],
    current: pa.Schema | None,
    mode: SchemaMode,
    ingested_at: datetime,
    result: BronzeLoad,
    manifest: list[tuple[Any, ...]],
    run_id: str,
    before: str | None,
) -> pa.Schema:
    """One DuckDB scan over every ETag-verified object whose footer row count is right."""
    try:
        footer_rows = dict(
            conn.execute(
                "SELECT file_name, num_rows FROM parquet_file_metadata(?)",
                [[obj.uri for _, obj, _ in chosen]],
            ).fetchall()
        )
    except duckdb.Error as exc:
        raise DirectReadError(str(exc)) from exc
    # Checked before inserting: DuckDB 1.5 cannot read back large uncommitted appends.
    loadable = []
    for target, obj, sidecar in chosen:
        rows = int(footer_rows.get(obj.uri, -1))
        if rows != sidecar.get("row_count"):
            result.quarantined.append(row_count_mismatch(obj, rows, sidecar))
        else:
            loadable.append((target, obj, sidecar, rows))
    if not loadable:
        return current  # type: ignore[return-value]
    uris = [obj.uri for _, obj, _, _ in loadable]
    try:
        union = conn.execute(
            "SELECT * FROM read_parquet(?, hive_partitioning = false) LIMIT 0", [uris]
        ).to_arrow_table()
        reconciled = reconcile(current, union, mode)
    except (duckdb.Error, SchemaConflictError) as exc:
        raise DirectReadError(str(exc)) from exc
    except NewColumnsRefusedError as exc:
        raise NewColumnsRefusedError(f"{exc} in {uris[0]} (schema mode failOnNewColumns)") from exc
    schema = reconciled.schema
    result.added_columns += [f.name for f in reconciled.added if before is not None]
    _create_or_evolve(conn, table, _with_lineage(reconciled.table, [], [], ingested_at))
    lineage = pa.Table.from_pylist(
        [{"uri": obj.uri, **_lineage(obj, sidecar, t)} for t, obj, sidecar, _ in loadable],
        schema=pa.schema(
            [("uri", pa.string())]
            + [(c, LINEAGE_TYPES.get(c, pa.string())) for c in OBJECT_LINEAGE]
        ),
    )
    columns = ", ".join(
        [f"p.{quote(f.name)}" for f in schema if f.name in union.column_names]
        + [f"l.{quote(c)}" for c in OBJECT_LINEAGE]
    )
    conn.register("bronze_lineage", lineage)
    try:
        conn.execute(
            f"INSERT INTO {quote(table)} BY NAME SELECT {columns}, $ingested AS _ingested_at "
            "FROM read_parquet($uris, filename = true, hive_partitioning = false) p "
            "JOIN bronze_lineage l ON p.filename = l.uri",
            {"uris": uris, "ingested": ingested_at},
        )
    except duckdb.Error as exc:
        raise DirectReadError(str(exc)) from exc
    finally:
        conn.unregister("bronze_lineage")
    for target, obj, sidecar, rows in loadable:
        _count(result, target, rows, obj.size)
        result.objects_read_directly += 1
        manifest.append(
            (table, target.partition_key, obj.uri, obj.etag, sidecar.get("content_sha256"), rows,
             fingerprint(union.schema), ingested_at, run_id)
        )  # fmt: skip
    return schema


class _Group:
    """Reconciled objects waiting to be inserted together."""

    def __init__(self) -> None:
        self.tables: list[pa.Table] = []
        self.lineage: list[dict[str, Any]] = []
        self.rows = 0

    def clear(self) -> None:
        self.tables, self.lineage, self.rows = [], [], 0

    def add(self, table: pa.Table, lineage: dict[str, Any]) -> None:
        self.tables.append(table)
        self.lineage.append(lineage)
        self.rows += table.num_rows

    def insert(self, conn: duckdb.DuckDBPyConnection, table: str, ingested_at: datetime) -> None:
        if not self.tables:
            return
        batch = _with_lineage(
            pa.concat_tables(self.tables, promote_options="default"),
            self.lineage,
            [t.num_rows for t in self.tables],
            ingested_at,
        )
        _create_or_evolve(conn, table, batch)
        conn.register("bronze_batch", batch)
        try:
            conn.execute(f"INSERT INTO {quote(table)} BY NAME SELECT * FROM bronze_batch")
        finally:
            conn.unregister("bronze_batch")
        self.clear()


def _clear_partitions(
    conn: duckdb.DuckDBPyConnection, table: str, targets: list[PartitionTarget]
) -> None:
    exists = table_exists(conn, table)
    for target in targets:
        if exists:
            where, params = _partition_predicate(target)
            conn.execute(f"DELETE FROM {quote(table)} WHERE {where}", params)
        for bookkeeping in ("_bronze_loads", "_bronze_quarantine"):
            conn.execute(
                f"DELETE FROM {bookkeeping} WHERE table_name = ? AND partition_key = ?",
                [table, target.partition_key],
            )


def _partition_predicate(target: PartitionTarget) -> tuple[str, list[Any]]:
    if target.region is None:
        return "_partition_hour = ?", [target.hour]
    return "_partition_hour = ? AND _region = ?", [target.hour, target.region]


def _create_or_evolve(conn: duckdb.DuckDBPyConnection, table: str, batch: pa.Table) -> None:
    conn.register("bronze_schema", batch.slice(0, 0))
    try:
        if not table_exists(conn, table):
            create_table_like(conn, table, "SELECT * FROM bronze_schema")
            return
        existing = {row[0] for row in conn.execute(f"DESCRIBE {quote(table)}").fetchall()}
        for name, duck_type, *_ in conn.execute("DESCRIBE SELECT * FROM bronze_schema").fetchall():
            if name not in existing:
                conn.execute(f"ALTER TABLE {quote(table)} ADD COLUMN {quote(name)} {duck_type}")
    finally:
        conn.unregister("bronze_schema")


def _record_schema_version(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    schema: pa.Schema | None,
    mode: str,
    run_id: str,
) -> int:
    last = conn.execute(
        "SELECT version, fingerprint FROM _schema_versions WHERE table_name = ? "
        "ORDER BY version DESC LIMIT 1",
        [table],
    ).fetchone()
    if schema is None:
        return int(last[0]) if last else 0
    current = fingerprint(schema)
    if last and last[1] == current:
        return int(last[0])
    version = (int(last[0]) if last else 0) + 1
    change = "created"
    if last is not None:
        previous = conn.execute(
            "SELECT columns FROM _schema_versions WHERE table_name = ? AND version = ?",
            [table, last[0]],
        ).fetchone()
        old_names = {c["name"] for c in json.loads(previous[0])} if previous else set()
        added = [f.name for f in schema if f.name not in old_names]
        removed = sorted(old_names - set(schema.names))
        change = (
            "; ".join(
                part
                for part in (
                    f"added {', '.join(added)}" if added else "",
                    f"removed {', '.join(removed)}" if removed else "",
                )
                if part
            )
            or "column types changed"
        )
    columns = json.dumps([{"name": f.name, "type": str(f.type)} for f in schema])
    conn.execute(
        "INSERT INTO _schema_versions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [table, version, current, columns, change, mode, datetime.now(UTC), run_id],
    )
    return version


def schema_history(conn: duckdb.DuckDBPyConnection, table: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT version, change, mode, recorded_at, columns FROM _schema_versions "
        "WHERE table_name = ? ORDER BY version",
        [table],
    ).fetchall()
