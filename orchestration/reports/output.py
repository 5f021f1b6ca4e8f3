"""Where reports are written for machines, and how they are drawn for people."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def reports_directory() -> Path:
    home = Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / "dagster_home")
    directory = home / "reports"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def write_json(name: str, document: dict[str, Any]) -> Path:
    path = reports_directory() / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=1, default=str))
    tmp.replace(path)  # readers never see half a report
    return path


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
