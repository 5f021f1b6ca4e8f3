"""Schema evolution with Databricks Auto Loader's modes, as pure Arrow functions."""

from __future__ import annotations

import json
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


def reconcile(current: pa.Schema | None, incoming: pa.Table, mode: SchemaMode) -> Reconciled:
    """Conform one object's rows to the table schema under `mode`, evolving it if allowed."""
    if current is None:
        # A column that is NULL throughout has no type yet; text is the one that fits anything.
        fields = [
            f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in incoming.schema
        ]
        schema = pa.schema(fields)
        first = incoming.cast(schema)
        return Reconciled(_with_rescued(first, None), schema, list(schema))
    known = set(current.names)
    new_fields = [f for f in incoming.schema if f.name not in known]
    if new_fields and mode == "failOnNewColumns":
        raise NewColumnsRefusedError(
            "new column(s) " + ", ".join(f"{f.name} ({f.type})" for f in new_fields)
        )
    schema = current
    added: list[pa.Field] = []
    if mode == "addNewColumns":
        for f in new_fields:
            schema = schema.append(f)
            added.append(f)
    rescued: dict[str, pa.Array] = {}
    if mode == "rescue":
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
                    raise SchemaConflictError(
                        f"column {target.name} is {column.type}, the table has {target.type}"
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
