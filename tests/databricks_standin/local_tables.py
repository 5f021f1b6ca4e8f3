"""Real Delta tables on local disk for the Databricks job under the stand-in (delta-rs, through
the `deltalake` package): what Unity Catalog's Delta tables are on a workspace.

Stands in for: Delta Lake on Databricks (`saveAsTable` with `replaceWhere`, `mergeSchema`,
table properties, views in the metastore). Local Spark here has no Delta jars (they download
from Maven at session start), so Spark computes and delta-rs writes: each write is one Delta
commit with a transaction log, the change data feed the synced tables read, and schema merge.
What differs, and why it is pinned elsewhere (docs/databricks.md): the replaceWhere predicate
is the job's Spark SQL with its TIMESTAMP literals written as ISO strings (delta-rs compares
them as UTC instants); a view is stored as a table of its rows (no metastore here).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from pyspark.sql import DataFrame, SparkSession

_TIMESTAMP = re.compile(r"TIMESTAMP '(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})'")


def delta_predicate(spark_sql: str) -> str:
    """The job's replaceWhere as delta-rs reads it: `TIMESTAMP 'Y-m-d H:M:S'` (UTC, the
    session's zone) becomes the ISO instant `'Y-m-dTH:M:SZ'`, and Spark's `\\'` inside a string
    literal becomes SQL's `''`; the rest is the same SQL."""
    return _TIMESTAMP.sub(r"'\1T\2Z'", spark_sql).replace("\\'", "''")


class LocalDeltaTables:
    """The job's table store (`exists`, `read`, `write`, `view`, `fqn`) over Delta tables in
    `root/<catalog>/<schema>/<table>`."""

    streaming = False  # Auto Loader (cloudFiles) is Databricks-only

    def __init__(self, spark: SparkSession, root: Path, catalog: str, schema: str) -> None:
        self.spark = spark
        self.catalog, self.schema = catalog, schema
        self.root = root

    def path(self, table: str) -> Path:
        return self.root / self.catalog / self.schema / table

    def fqn(self, table: str) -> str:
        return f"`{self.catalog}`.`{self.schema}`.`{table}`"

    def exists(self, table: str) -> bool:
        return DeltaTable.is_deltatable(str(self.path(table)))

    def read(self, table: str) -> DataFrame:
        data = pa.table(DeltaTable(str(self.path(table))).to_pyarrow_table())
        return self.spark.createDataFrame(data)

    def write(self, table: str, df: DataFrame, spec: dict[str, Any]) -> None:
        data = df.toArrow()
        predicate = spec["options"].get("replaceWhere")
        merge = spec["options"].get("mergeSchema") == "true"
        write_deltalake(
            str(self.path(table)),
            data,
            mode=spec["mode"],
            predicate=delta_predicate(predicate) if predicate else None,
            schema_mode="merge" if merge else None,
            configuration=spec.get("table_properties") or None,
        )

    def view(self, name: str, select: str) -> None:
        self.write(name, self.spark.sql(select), {"mode": "overwrite", "options": {}})


def read_table(root: Path, schema: str, table: str, catalog: str = "lakehouse") -> pa.Table:
    """A table the job wrote under the stand-in, as Delta readers see it (latest version)."""
    return pa.table(DeltaTable(str(root / catalog / schema / table)).to_pyarrow_table())


def write_table(
    root: Path, schema: str, table: str, data: pa.Table, catalog: str = "lakehouse"
) -> None:
    """A table as if the job had written it: one Delta commit replacing its rows."""
    path = root / catalog / schema / table
    path.parent.mkdir(parents=True, exist_ok=True)
    write_deltalake(
        str(path), data, mode="overwrite", schema_mode="overwrite",
        configuration={"delta.enableChangeDataFeed": "true"},
    )  # fmt: skip
