"""DuckDB SQL to Databricks SQL, by sqlglot: the Databricks engine's statements are generated."""

from __future__ import annotations

import sqlglot


def to_databricks(sql: str) -> str:
    """The Databricks SQL for one DuckDB statement; `$name` parameters become `:name`."""
    (statement,) = sqlglot.transpile(sql, read="duckdb", write="databricks", pretty=True)
    return statement
