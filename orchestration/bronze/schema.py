"""Schema evolution with Databricks Auto Loader's modes, as pure Arrow functions."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

SchemaMode = Literal["addNewColumns", "rescue", "failOnNewColumns", "none"]
SCHEMA_MODES: tuple[SchemaMode, ...] = ("addNewColumns", "rescue", "failOnNewColumns", "none")
RESCUED_COLUMN = "_rescued_data"


class SchemaConflictError(Exception):
    """This object cannot be reconciled with the table: quarantine it, load the rest."""


class NewColumnsRefusedError(Exception):
    """failOnNewColumns saw new columns: the load stops until the schema is accepted."""


@dataclass
class Reconciled:
    table: pa.Table  # conformed to `schema`, plus `_rescued_data`
    schema: pa.Schema  # the table schema after this object
    added: list[pa.Field] = field(default_factory=list)
    rescued_rows: int = 0


@dataclass(frozen=True)
class ColumnVote:
    """The type a column takes when it joins the table, where the load's objects disagree."""

    type: str  # an Arrow type as the sidecars state it ("int64", "timestamp[us, tz=UTC]")
    holders: tuple[str, ...]  # the objects (URIs) that have the column in that type


def agreed_types(declared: Mapping[str, Sequence[tuple[str, str]]]) -> dict[str, ColumnVote]:
    """The rule both engines follow, decided here and handed to them: a column the table does
    not have yet and the load's objects type differently takes the type most objects give it
    (as their sidecars state it), ties broken by the type's name. Parquet's null type (a column
    NULL throughout) votes for none but makes the column one to decide; a column counts once per
    object; a type name is read as Arrow reads it ("Int64" is int64), and one it cannot read
    gives no vote. `declared`: each object's sidecar schema, (name, type) pairs by URI. The
    table's type wins over this for a column it has; objects that cannot cast are quarantined."""
    holders: dict[str, dict[str, list[str]]] = {}
    nulls: set[str] = set()
    for uri, schema in declared.items():
        counted: set[str] = set()
        for name, kind in schema:
            parsed = arrow_type(kind)
            if name in counted or parsed is None:
                continue
            counted.add(name)
            if pa.types.is_null(parsed):
                nulls.add(name)
            else:
                holders.setdefault(name, {}).setdefault(str(parsed), []).append(uri)
    return {
        name: ColumnVote(winner, tuple(by_type[winner]))
        for name, by_type in holders.items()
        if len(by_type) > 1 or name in nulls
        for winner in [min(by_type, key=lambda t: (-len(by_type[t]), t))]
    }


_TIMESTAMP = re.compile(r"timestamp\[(s|ms|us|ns)(?:, tz=(.+))?\]")


def arrow_type(name: str) -> pa.DataType | None:
    """An Arrow type from the name `str(type)` gives it (None for one this cannot read back)."""
    if timestamp := _TIMESTAMP.fullmatch(name):
        return pa.timestamp(timestamp[1], timestamp[2])  # type: ignore[arg-type]
    try:
        return pa.type_for_alias(name)
    except ValueError:
        return None


def reconcile(
    current: pa.Schema | None,
    incoming: pa.Table,
    mode: SchemaMode,
    agreed: Mapping[str, pa.DataType] | None = None,
    creating: bool = False,
) -> Reconciled:
    """Conform one object's rows to the table schema under `mode`, evolving it if allowed.
    `current` None: the table does not exist yet, and this object's columns make it;
    `creating`: the load is the one creating the table, whose objects' columns all join it
    (Auto Loader's first inference), the mode governing the columns that come later.
    `agreed`: the types the load's objects agreed for columns the table does not have yet
    (`agreed_types`); the table's type wins for a column it has. An object whose values do
    not cast to the type is a conflict (rescued under `rescue`)."""
    agreed = agreed or {}
    creating = creating or current is None
    schema = pa.schema([]) if current is None else current
    known = set(schema.names)
    new_fields = [
        # A column that is NULL throughout has no type yet; text is the one that fits anything.
        f.with_type(agreed.get(f.name) or (pa.string() if null else f.type))
        for f in incoming.schema
        if f.name not in known
        for null in [pa.types.is_null(f.type)]
    ]
    if new_fields and mode == "failOnNewColumns" and not creating:
        raise NewColumnsRefusedError(
            "new column(s) " + ", ".join(f"{f.name} ({f.type})" for f in new_fields)
        )
    added: list[pa.Field] = []
    if mode == "addNewColumns" or creating:
        for f in new_fields:
            schema = schema.append(f)
            added.append(f)
    rescued: dict[str, pa.Array] = {}
    if mode == "rescue" and not creating:
        rescued.update({f.name: incoming.column(f.name) for f in new_fields})
    columns = []
    for target in schema:
        if target.name not in incoming.column_names:
            columns.append(pa.nulls(incoming.num_rows, target.type))
            continue
        column = incoming.column(target.name)
        if column.type != target.type:
            try:
                column = pc.cast(column, target.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                if mode != "rescue":
                    holder = "other objects have" if target.name in agreed else "the table has"
                    raise SchemaConflictError(
                        f"column {target.name} is {column.type}, {holder} {target.type}"
                    ) from exc
                rescued[target.name] = column
                column = pa.nulls(incoming.num_rows, target.type)
        columns.append(column)
    conformed = pa.Table.from_arrays(columns, schema=schema)
    rescued_json = _rescued_json(rescued, incoming.num_rows)
    rescued_rows = 0 if rescued_json is None else incoming.num_rows - rescued_json.null_count
    return Reconciled(_with_rescued(conformed, rescued_json), schema, added, rescued_rows)


def _rescued_json(rescued: dict[str, pa.Array], rows: int) -> pa.Array | None:
    if not rescued:
        return None
    values = {name: column.to_pylist() for name, column in rescued.items()}
    out = []
    for i in range(rows):
        row = {name: vals[i] for name, vals in values.items() if vals[i] is not None}
        out.append(json.dumps(row, default=str, sort_keys=True) if row else None)
    return pa.array(out, pa.string())


def _with_rescued(table: pa.Table, rescued: pa.Array | None) -> pa.Table:
    if rescued is None:
        rescued = pa.nulls(table.num_rows, pa.string())
    return table.append_column(RESCUED_COLUMN, rescued)
