"""Runs the lakehouse's Databricks job as a workspace would, on this machine: the stand-in
starts this module with the job's uploaded script and its parameters.

Stands in for: the Databricks runtime around a `spark_python_task` (a Spark session on a
cluster, Unity Catalog Volumes and DBFS mounted at /Volumes and /dbfs, Delta tables in the
metastore). The job runs unchanged: its `main` receives this machine's `Runtime` (local Spark,
the stand-in's folders for Volumes and DBFS, real Delta tables through delta-rs) instead of
building the workspace's.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from dagster_pipes import PipesBufferedFilesystemMessageWriterChannel

from tests.databricks_standin.local_tables import LocalDeltaTables


class WholeChunkChannel(PipesBufferedFilesystemMessageWriterChannel):
    """Each message chunk written whole (temporary name, then renamed). On a workspace a Volume
    or DBFS file is visible only once closed; here the mount is a plain folder, where Dagster
    could otherwise read half a chunk and lose the rest of it."""

    def upload_messages_chunk(self, payload: Any, index: int) -> None:
        target = Path(self._path) / f"{index}.json"
        staged = target.with_name(f".{index}.json.partial")
        staged.write_text(payload.read(), encoding="utf-8")
        staged.replace(target)


def _job(script: str) -> Any:
    """The uploaded job script as a module (it is one file, as on the workspace)."""
    spec = importlib.util.spec_from_file_location("lakehouse_job", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["lakehouse_job"] = module
    spec.loader.exec_module(module)
    return module


def local_spark() -> Any:
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.appName("lakehouse")
        .master("local[2]")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        # A job here is seconds long on tiny data: the JIT's first tier only and the serial
        # collector take about 40% less CPU than the defaults, which matters on 2 cores.
        .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
        .getOrCreate()
    )


def main() -> None:
    script, *parameters = sys.argv[1:]
    sys.argv = [script, *parameters]  # the job's command line, as on a cluster
    job = _job(script)
    tables = Path(os.environ["STANDIN_TABLES"])
    runtime = job.Runtime(
        spark=local_spark(),
        tables=lambda spark, catalog, schema: LocalDeltaTables(spark, tables, catalog, schema),
        volumes=Path(os.environ["STANDIN_VOLUMES"]),
        dbfs=Path(os.environ["STANDIN_DBFS"]),
        channel=lambda path, interval: WholeChunkChannel(path=path, interval=interval),
    )
    job.main(runtime)


if __name__ == "__main__":
    main()
