"""Results written for machines (JSON under DAGSTER_HOME/reports) and drawn for people
(Markdown tables and charts); shared by serving and reporting, owned by neither."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import polars as pl

from orchestration.home import dagster_home, private_directory, write_private
from orchestration.transforms.columns import DESCRIPTIONS


def reports_directory() -> Path:
    return private_directory(dagster_home() / "reports")


def write_json(name: str, document: dict[str, Any]) -> Path:
    path = reports_directory() / f"{name}.json"
    return write_private(path, json.dumps(document, indent=1, default=str))


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table whose cells cannot end a cell or a row: keys, names and reasons come
    from data any node can write."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    text = str(value).replace("\\", "\\\\").replace("|", "\\|")
    return " ".join(text.splitlines())


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
        if not (dtype.is_integer() or dtype.is_float() or dtype in (pl.Boolean, pl.String))
    )
    return dg.MetadataValue.table(
        records=[dg.TableRecord(row) for row in shown.to_dicts()],
        schema=dg.TableSchema(
            columns=[dg.TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()]
        ),
    )


def table_schema(columns: Iterable[tuple[str, str]]) -> dg.TableSchema:
    """(name, type) pairs as the UI's column schema, each column with what it holds."""
    described = [dg.TableColumn(n, kind, description=DESCRIPTIONS.get(n)) for n, kind in columns]
    return dg.TableSchema(columns=described)


def warehouse_table(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    name: str,
    database: Path,
    where: str = "true",
    params: Sequence[Any] = (),
    order: str = "",
) -> dict[str, Any]:
    """What every warehouse table shows in the UI: its name, full column schema with
    descriptions, the first rows written (as a table) and the DuckDB file it lives in."""
    quoted = '"' + table.replace('"', '""') + '"'
    columns = conn.execute(f"DESCRIBE {quoted}").fetchall()
    rows = conn.execute(
        f"SELECT * FROM {quoted} WHERE {where} {f'ORDER BY {order}' if order else ''} LIMIT 5",
        list(params),
    ).to_arrow_table()
    return {
        "table": name,
        "dagster/table_name": name,
        "dagster/column_schema": table_schema((c[0], c[1]) for c in columns),
        "preview": table_preview(pl.from_arrow(rows)),  # type: ignore[arg-type]
        "warehouse_file": dg.MetadataValue.path(str(database)),
    }


def money(usd: float) -> str:
    """Money as money: $1,234.56; $0.0042 under a dollar; $1.23M from a million."""
    if abs(usd) >= 1e6:
        return f"${usd / 1e6:,.2f}M"
    return f"${usd:,.4f}" if 0 < abs(usd) < 1 else f"${usd:,.2f}"


def svg_bar_panels(
    panels: dict[str, dict[str, float]], label: Callable[[float], str] = money
) -> str:
    """Horizontal bar charts side by side as one SVG (each panel scaled to its own largest
    value, so a 10-node and a 100,000-node fleet are both readable)."""
    bar_h, gap, label_w, bar_w, panel_w = 22, 8, 90, 170, 340
    rows = max((len(p) for p in panels.values()), default=0)
    height = 40 + rows * (bar_h + gap)
    colors = ("#4F43DD", "#2EB67D", "#E3A008", "#6B7280")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{panel_w * len(panels)}" '
        f'height="{height}" font-family="sans-serif" font-size="12">'
    ]
    for i, (title, values) in enumerate(panels.items()):
        x0, top = i * panel_w, max(values.values(), default=0) or 1
        parts.append(f'<text x="{x0 + 4}" y="16" font-weight="bold">{escape(title)}</text>')
        for j, (name, value) in enumerate(values.items()):
            y = 28 + j * (bar_h + gap)
            width = max(1, round(value / top * bar_w)) if value > 0 else 0
            color = colors[j % len(colors)]
            parts += [
                f'<text x="{x0 + 4}" y="{y + 15}">{escape(name)}</text>',
                f'<rect x="{x0 + label_w}" y="{y}" width="{width}" height="{bar_h}" '
                f'fill="{color}"/>',
                f'<text x="{x0 + label_w + width + 4}" y="{y + 15}">{escape(label(value))}</text>',
            ]
    parts.append("</svg>")
    return "".join(parts)


def svg_markdown(svg: str, alt: str) -> str:
    """An SVG inline in Markdown metadata: the UI draws it as an image."""
    return f"![{alt}](data:image/svg+xml;base64,{base64.b64encode(svg.encode()).decode()})"
