"""Loading bronze partitions into DuckDB: verify, reconcile schemas, replace partitions."""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from edge_agent.contract import schema_fingerprint as fingerprint
from orchestration.bronze import bookkeeping
from orchestration.bronze.admission import column_problem
from orchestration.bronze.figures import BronzeLoad, BronzeRequest, PartitionLoad
from orchestration.bronze.objects import (
    AdmittedObject,
    QuarantinedObject,
    StagedObject,
    lineage,
    reason,
    row_count_mismatch,
    stage_all,
    staged_footer_problem,
    unreadable_parquet,
)
from orchestration.bronze.scan import Footer, ScanError, empty_table, insert_scan, read_footer
from orchestration.bronze.schema import (
    RESCUED_COLUMN,
    NewColumnsRefusedError,
    Reconciled,
    SchemaConflictError,
    arrow_type,
    reconcile,
)
from orchestration.bronze.staging import staging_folder, sweep
from orchestration.landing.objects import LandingObject
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


RESERVED_COLUMNS = frozenset({*LINEAGE_COLUMNS, RESCUED_COLUMN})


def renamed_reserved(data: pa.Table) -> tuple[pa.Table, dict[str, str]]:
    """Data columns that collide with bronze's own columns get a `_data` suffix (kept, not
    dropped or confused with lineage); returns the table and {old: new} names."""
    renames: dict[str, str] = {}
    taken = set(data.column_names)
    for name in data.column_names:
        if name in RESERVED_COLUMNS:
            new = f"{name}_data"
            while new in taken or new in RESERVED_COLUMNS:
                new += "_"
            renames[name] = new
            taken.add(new)
    if not renames:
        return data, renames
    return data.rename_columns([renames.get(n, n) for n in data.column_names]), renames


def data_schema(conn: duckdb.DuckDBPyConnection, table: str) -> pa.Schema | None:
    if not table_exists(conn, table):
        return None
    schema = conn.execute(f"SELECT * FROM {quote(table)} LIMIT 0").to_arrow_table().schema
    hidden = {*LINEAGE_COLUMNS, RESCUED_COLUMN}
    return pa.schema([f for f in schema if f.name not in hidden])


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


GROUP_ROWS = 1_000_000  # rows of reconciled Arrow tables inserted per statement
# Objects are staged on local disk in chunks of about this many bytes, each loaded (one scan)
# and deleted before the next is staged: a prod run of 10,000 objects needs no 10,000 objects
# of disk.
STAGING_BYTES = 1 << 30


def load_bronze(
    conn: duckdb.DuckDBPyConnection,
    request: BronzeRequest,
    *,
    bulk_scan: bool = True,
    staging_root: Path | None = None,
) -> BronzeLoad:
    """Replace each target partition with every verified object of the request; one
    transaction.

    Objects are staged on local disk in bounded chunks, each checked against its sidecar's
    SHA-256 as it streams. A chunk's objects of the most common schema then load by one DuckDB
    scan; the others are read and reconciled one by one. A failure anywhere, including
    failOnNewColumns, rolls the whole load back and the partitions keep their old rows.
    Halves of uploads are quarantined by name (they load once the upload completes and its
    hour is loaded again), as is any object that breaks the admission rules (the request's
    limits, the key's node, column names). A read that may pass next time raises
    TransientReadError: rolled back, the partitions keep their rows, the run retries.
    """
    for ddl in bookkeeping.BOOKKEEPING_DDL:
        conn.execute(ddl)
    staging_root = staging_root or Path(tempfile.gettempdir()) / "edge-lakehouse-staging"
    sweep(staging_root)  # what killed loads left behind
    bulk_scan = bulk_scan and request.mode != "rescue"
    # Bronze rows have no order; without keeping one, DuckDB appends from every thread.
    conn.execute("SET preserve_insertion_order = false")
    try:
        try:
            return _Load(conn, request).run(bulk_scan, staging_root)
        except ScanError:  # rolled back: redone object by object, which names the bad object
            return _Load(conn, request).run(False, staging_root)
    finally:
        conn.execute("RESET preserve_insertion_order")


def _chunks(admitted: list[AdmittedObject], budget: int) -> Iterator[list[AdmittedObject]]:
    """The objects in key order, cut where their bytes on the staging disk pass `budget`."""
    chunk: list[AdmittedObject] = []
    size = 0
    for item in admitted:
        if chunk and size + item.obj.size > budget:
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item.obj.size
    if chunk:
        yield chunk


class _Load:
    """One bronze load: every staged object of the targets into `table`, in one transaction."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, request: BronzeRequest) -> None:
        self.conn, self.client, self.table = conn, request.client, request.table
        self.targets, self.mode, self.run_id = request.targets, request.mode, request.run_id
        self.limits = request.limits
        self.target_of = {obj.uri: t for t, obj in [*request.listed, *request.incomplete]}
        self.ingested_at = datetime.now(UTC)
        self.result = BronzeLoad(
            partitions={t.partition_key: PartitionLoad() for t in request.targets}
        )
        self.result.quarantined += request.refused
        self.admitted = request.admitted
        table = self.table
        self.current = data_schema(conn, table)
        self.decided = {
            name: kind
            for name, vote in request.column_types.items()
            if (kind := arrow_type(vote.type)) is not None
        }
        self.started_with = set(self.current.names) if self.current is not None else set()
        self.before = fingerprint(self.current) if self.current is not None else None
        self.manifest: list[tuple[Any, ...]] = []
        self.group = _Group()

    def run(self, bulk_scan: bool, staging_root: Path) -> BronzeLoad:
        conn = self.conn
        conn.execute("BEGIN TRANSACTION")
        try:
            bookkeeping.clear_bookkeeping(conn, self.table, self.targets)
            for chunk in _chunks(self.admitted, STAGING_BYTES):
                with staging_folder(staging_root) as directory:
                    objects: list[StagedObject] = []
                    for outcome in stage_all(self.client, chunk, directory, self.limits):
                        if isinstance(outcome, QuarantinedObject):
                            self.result.quarantined.append(outcome)
                        else:
                            objects.append(outcome)
                    self._load_objects(objects, bulk_scan)
                    self.group.insert(conn, self.table, self.ingested_at)
            bookkeeping.delete_earlier_rows(conn, self.table, self.targets, self.ingested_at)
            self._record()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return self.result

    def _load_objects(self, objects: list[StagedObject], bulk_scan: bool) -> None:
        """Check each object's footer against its sidecar, then load: one scan for the objects
        of the most common schema, object by object for the rest."""
        whole: list[tuple[StagedObject, Footer]] = []
        for staged in objects:
            problem = staged_footer_problem(staged, self.limits)  # before anything parses it
            if problem is not None:
                self.result.quarantined.append(QuarantinedObject(staged.obj, problem))
                continue
            footer = read_footer(staged.path)
            if footer is None:  # unreadable: reading it alone names the error
                self._load_one(staged, None)
            elif footer.rows != staged.sidecar.row_count:
                self.result.quarantined.append(
                    row_count_mismatch(staged.obj, footer.rows, staged.sidecar)
                )
            else:
                whole.append((staged, footer))
        common = None
        if bulk_scan and whole:
            common = Counter(f.signature for _, f in whole).most_common(1)[0][0]
        scanned = [(s, f) for s, f in whole if f.signature == common]
        if scanned and not self._scan(scanned):
            scanned = []
        in_scan = {id(s) for s, _ in scanned}
        for staged, footer in whole:
            if id(staged) not in in_scan:
                self._load_one(staged, footer)

    def _column_problem(self, schema: pa.Schema) -> str | None:
        """Why these columns cannot join the table as it is now (it evolves within a load)."""
        existing = [*(self.current.names if self.current is not None else []), *RESERVED_COLUMNS]
        return column_problem(schema, existing, self.limits)

    def _scan(self, scanned: list[tuple[StagedObject, Footer]]) -> bool:
        """One DuckDB scan over objects of one schema; False if that schema cannot be taken."""
        staged = [s for s, _ in scanned]
        if self._column_problem(scanned[0][1].schema) is not None:  # one schema: all alike
            return False  # object by object, where each is quarantined with the reason
        shape = empty_table(self.conn, staged[0].path)
        if RESERVED_COLUMNS & set(shape.column_names):
            return False  # object by object, where the colliding columns are renamed
        known = self.current.names if self.current is not None else []
        agreed = self._agreed({})
        if any(
            (self.current.field(f.name).type if f.name in known else agreed.get(f.name))
            not in (None, f.type)
            for f in shape.schema
        ):  # the table's type, or the one the load's objects agreed on, differs
            return False  # object by object: Arrow's safe cast, never DuckDB's rounding one
        try:
            creating = self.before is None
            reconciled = reconcile(self.current, shape, self.mode, agreed, creating)
        except SchemaConflictError:  # each object is tried alone, and quarantined with why
            return False
        except NewColumnsRefusedError as exc:
            raise _refused(exc, staged[0].obj) from exc
        self._evolve(reconciled)
        _create_or_evolve(
            self.conn, self.table, _with_lineage(reconciled.table, [], [], self.ingested_at)
        )
        lineage = pa.Table.from_pylist(
            [{"path": str(s.path), **self._lineage(s)} for s in staged],
            schema=pa.schema(
                [("path", pa.string())]
                + [(c, LINEAGE_TYPES.get(c, pa.string())) for c in OBJECT_LINEAGE]
            ),
        )
        columns = [f.name for f in reconciled.schema if f.name in shape.column_names]
        insert_scan(self.conn, self.table, columns, lineage, self.ingested_at)
        for s, f in scanned:
            self._loaded(s, f.rows, shape.schema)
            self.result.objects_bulk_loaded += 1
        return True

    def _load_one(self, staged: StagedObject, footer: Footer | None) -> None:
        """Read, check and reconcile one object (`footer`: its footer, None if unreadable);
        its rows join the next Arrow insert."""
        # Names first: a table cannot hold duplicate columns.
        problem = None if footer is None else self._column_problem(footer.schema)
        if problem is not None:
            self.result.quarantined.append(QuarantinedObject(staged.obj, problem))
            return
        try:
            data = pq.read_table(staged.path)
        except (pa.ArrowInvalid, OSError) as exc:
            self.result.quarantined.append(unreadable_parquet(staged.obj, exc))
            return
        if data.num_rows != staged.sidecar.row_count:
            self.result.quarantined.append(
                row_count_mismatch(staged.obj, data.num_rows, staged.sidecar)
            )
            return
        data, renames = renamed_reserved(data)
        self.result.renamed_columns.update(renames)
        try:
            agreed, creating = self._agreed(renames), self.before is None
            reconciled = reconcile(self.current, data, self.mode, agreed, creating)
        except SchemaConflictError as exc:
            why = reason("schema", {"why": str(exc)})
            self.result.quarantined.append(QuarantinedObject(staged.obj, why))
            return
        except NewColumnsRefusedError as exc:
            raise _refused(exc, staged.obj) from exc
        self._evolve(reconciled)
        self.result.rescued_rows += reconciled.rescued_rows
        self.group.add(reconciled.table, self._lineage(staged))
        self._loaded(staged, data.num_rows, data.schema)
        if self.group.rows >= GROUP_ROWS:
            self.group.insert(self.conn, self.table, self.ingested_at)

    def _agreed(self, renames: dict[str, str]) -> dict[str, pa.DataType]:
        """The decided types, by the names the object's columns are stored under, for the
        columns the table did not have when the load began (for those, its types win)."""
        stored = {renames.get(name, name): kind for name, kind in self.decided.items()}
        return {name: kind for name, kind in stored.items() if name not in self.started_with}

    def _evolve(self, reconciled: Reconciled) -> None:
        self.current = reconciled.schema
        if self.before is not None:
            self.result.added_columns += [f.name for f in reconciled.added]

    def _lineage(self, staged: StagedObject) -> dict[str, Any]:
        return lineage(staged.obj, staged.sidecar, self.target_of[staged.obj.uri])

    def _loaded(self, staged: StagedObject, rows: int, schema: pa.Schema) -> None:
        target = self.target_of[staged.obj.uri]
        result = self.result
        result.rows += rows
        result.objects += 1
        result.bytes += staged.size
        partition = result.partitions[target.partition_key]
        partition.rows += rows
        partition.objects += 1
        partition.bytes += staged.size
        self.manifest.append(
            (self.table, target.partition_key, staged.obj.uri, staged.obj.etag,
             staged.sidecar.content_sha256, rows, fingerprint(schema), self.ingested_at,
             self.run_id)
        )  # fmt: skip

    def _record(self) -> None:
        """Bookkeeping in the load's transaction: manifest, quarantine, schema version."""
        conn, table = self.conn, self.table
        if self.manifest:
            conn.executemany(
                "INSERT INTO _bronze_loads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", self.manifest
            )
        for q in self.result.quarantined:
            self.result.partitions[self.target_of[q.obj.uri].partition_key].quarantined += 1
            conn.execute(
                "INSERT INTO _bronze_quarantine VALUES (?, ?, ?, ?, ?, ?)",
                [table, self.target_of[q.obj.uri].partition_key, q.obj.uri, q.reason,
                 self.ingested_at, self.run_id],
            )  # fmt: skip
        stored = data_schema(conn, table)  # as DuckDB keeps it: versions compare like with like
        self.result.columns = [(f.name, str(f.type)) for f in stored or []]
        self.result.schema_version = bookkeeping.record_schema_version(
            conn, table, stored, self.mode, self.run_id
        )


def _refused(exc: NewColumnsRefusedError, obj: LandingObject) -> NewColumnsRefusedError:
    return NewColumnsRefusedError(f"{exc} in {obj.uri} (schema mode failOnNewColumns)")


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
