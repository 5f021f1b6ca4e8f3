"""What a landing object must be to load, on either engine: the caps, the node that wrote it,
and column names every engine can store. One place for these rules; a breach quarantines the
object with the reason, and the rest of its hour loads."""

from __future__ import annotations

from collections.abc import Iterable

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


def ownership_problem(obj: LandingObject, sidecar: Sidecar) -> str | None:
    """A node may only write under its own key: lineage and deduplication trust the node id."""
    node = node_of_key(obj.key)
    if sidecar.node_id != node:
        return f"written under node {node!r} but its sidecar names node {sidecar.node_id[:64]!r}"
    return None


def column_problem(names: list[str], existing: Iterable[str], limits: LandingLimits) -> str | None:
    """Why an object's columns cannot join the bronze table, or None. `existing`: the table's
    columns (its data, lineage and rescued columns), which SQL engines match ignoring case."""
    if len(names) > limits.max_columns:
        return f"{len(names)} columns, over the cap of {limits.max_columns}"
    seen: dict[str, str] = {}
    for name in names:
        if not name or len(name) > limits.max_column_name_length:
            return (
                f"column name {name[:40]!r} is empty or longer than "
                f"{limits.max_column_name_length} characters"
            )
        if UNSAFE_NAME_CHARACTERS & set(name) or not name.isprintable():
            return f"column name {name[:40]!r} holds a space, a control or one of ,;{{}}()="
        folded = name.casefold()
        if folded in seen:
            twice = "twice" if seen[folded] == name else f"as {seen[folded]!r} and {name!r}"
            return f"column {name[:40]!r} appears {twice} (names match ignoring case)"
        seen[folded] = name
    table = {name.casefold(): name for name in existing}
    for name in names:
        known = table.get(name.casefold())
        if known is not None and known != name:
            return f"column {name[:40]!r} differs only in case from bronze column {known!r}"
    return None
