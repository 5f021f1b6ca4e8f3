"""What a landing object must be to load, on either engine: the caps, the node that wrote it,
and column names every engine can store. One place for these rules; a breach quarantines the
object with the reason, and the rest of its hour loads."""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from edge_agent.contract import Sidecar, node_of_key
from orchestration.landing.objects import LandingObject

# Delta Lake stores a column whose name holds one of these only with column mapping on, and
# DuckDB-only names would make the two engines' bronze tables differ.
UNSAFE_NAME_CHARACTERS = frozenset(" ,;{}()\n\t=")


class LandingLimits(BaseModel):
    """Caps on what one landing object may cost a load (per environment, `landing_limits`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_sidecar_bytes: int = Field(default=64 * 1024, gt=0)
    max_object_bytes: int = Field(default=1 << 30, gt=0)
    max_columns: int = Field(default=256, gt=0)
    max_column_name_length: int = Field(default=128, gt=0)
    max_footer_bytes: int = Field(default=1 << 20, gt=0)  # a Parquet footer read on its own
    max_nesting_depth: int = Field(default=8, gt=0)  # structs, lists and maps inside columns


def listing_problem(obj: LandingObject, limits: LandingLimits) -> str | None:
    """Why the listing alone rules the object out (nothing is downloaded), or None."""
    if node_of_key(obj.key) is None:
        return "not under a node's folder (year=/month=/day=/hour=/<node>/<batch>.parquet)"
    if obj.size > limits.max_object_bytes:
        return f"object is {obj.size} bytes, over the cap of {limits.max_object_bytes}"
    if obj.sidecar_size > limits.max_sidecar_bytes:
        return (
            f"metadata sidecar is {obj.sidecar_size} bytes, over the cap of "
            f"{limits.max_sidecar_bytes}"
        )
    return None


def footer_problem(footer_length: int, object_size: int, limits: LandingLimits) -> str | None:
    """A Parquet footer (its length from the file's last 8 bytes) too large to parse safely."""
    if footer_length + 12 > object_size:
        return f"Parquet footer of {footer_length} bytes does not fit the object"
    if footer_length + 8 > limits.max_footer_bytes:
        return (
            f"Parquet footer of {footer_length} bytes is over the cap of {limits.max_footer_bytes}"
        )
    return None


def ownership_problem(obj: LandingObject, sidecar: Sidecar) -> str | None:
    """A node may only write under its own key: lineage and deduplication trust the node id."""
    node = node_of_key(obj.key)
    if sidecar.node_id != node:
        return f"written under node {node!r} but its sidecar names node {sidecar.node_id[:64]!r}"
    return None


def column_problem(schema: pa.Schema, existing: Iterable[str], limits: LandingLimits) -> str | None:
    """Why an object's columns cannot join the bronze table, or None. Nested fields (structs,
    lists, maps) count and are named like columns. `existing`: the table's columns (data,
    lineage and rescued), which SQL engines match ignoring case."""
    leaves = sum(_leaves(f.type) for f in schema)
    if leaves > limits.max_columns:
        return f"{leaves} columns and nested fields, over the cap of {limits.max_columns}"
    problem = _fields_problem(list(schema), "", limits, depth=1)
    if problem is not None:
        return problem
    table = {name.casefold(): name for name in existing}
    for name in schema.names:
        known = table.get(name.casefold())
        if known is not None and known != name:
            return case_clash(name, known)
    return None


def case_clash(name: str, known: str) -> str:
    return f"column {name[:40]!r} differs only in case from bronze column {known!r}"


def _children(kind: pa.DataType) -> list[pa.Field]:
    if pa.types.is_struct(kind):
        return [kind.field(i) for i in range(kind.num_fields)]
    if pa.types.is_map(kind):
        return [kind.key_field, kind.item_field]
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return [kind.value_field]
    if pa.types.is_fixed_size_list(kind):
        return [kind.value_field]
    return []


def _leaves(kind: pa.DataType) -> int:
    children = _children(kind)
    return sum(_leaves(c.type) for c in children) if children else 1


def _fields_problem(
    fields: list[pa.Field], path: str, limits: LandingLimits, depth: int
) -> str | None:
    if depth > limits.max_nesting_depth:
        return f"column {path[:60]!r} nests deeper than {limits.max_nesting_depth} levels"
    seen: dict[str, str] = {}
    for f in fields:
        name = path + f.name
        if not f.name or len(f.name) > limits.max_column_name_length:
            return (
                f"column name {name[:40]!r} is empty or longer than "
                f"{limits.max_column_name_length} characters"
            )
        if UNSAFE_NAME_CHARACTERS & set(f.name) or not f.name.isprintable():
            return f"column name {name[:40]!r} holds a space, a control or one of ,;{{}}()="
        folded = f.name.casefold()
        if folded in seen:
            twice = "twice" if seen[folded] == f.name else f"as {seen[folded]!r} and {f.name!r}"
            return f"column {name[:40]!r} appears {twice} (names match ignoring case)"
        seen[folded] = f.name
        children = _children(f.type)
        if children:  # a struct's fields have names; list items and map entries Parquet's own
            inner = name + ("." if pa.types.is_struct(f.type) else "[].")
            problem = _fields_problem(children, inner, limits, depth + 1)
            if problem is not None:
                return problem
    return None
