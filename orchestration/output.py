"""Results written for machines (JSON under DAGSTER_HOME/reports) and drawn for people
(Markdown tables and charts); shared by serving and reporting, owned by neither."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from orchestration.home import dagster_home, private_directory, write_private


def reports_directory() -> Path:
    return private_directory(dagster_home() / "reports")


def write_json(name: str, document: dict[str, Any]) -> Path:
    path = reports_directory() / f"{name}.json"
    return write_private(path, json.dumps(document, indent=1, default=str))


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def bar_chart(values: dict[str, float], unit: str = "", width: int = 30) -> str:
    """A horizontal bar chart in Markdown (monospace), largest value = `width` blocks."""
    if not values:
        return "(nothing to chart)"
    top = max(values.values()) or 1.0
    label = max(len(k) for k in values)
    rows = [
        f"{k.ljust(label)} {'█' * max(1, round(v / top * width)) if v else ''} {v:,.2f}{unit}"
        for k, v in values.items()
    ]
    return "```\n" + "\n".join(rows) + "\n```"


def table_preview(frame: pl.DataFrame, max_columns: int = 12) -> dg.TableMetadataValue:
    """The first rows of a table as a table in the UI (times and other types shown as text)."""
    frame = frame.select(frame.columns[:max_columns])
    shown = frame.with_columns(
        pl.col(name).cast(pl.String)
        for name, dtype in frame.schema.items()
        if not (dtype.is_numeric() or dtype == pl.Boolean or dtype == pl.String)
    )
    return dg.MetadataValue.table(
        records=[dg.TableRecord(row) for row in shown.to_dicts()],
        schema=dg.TableSchema(
            columns=[dg.TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()]
        ),
    )
