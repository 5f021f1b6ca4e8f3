"""Edge agent: uploads a node's SQLite sensor readings to S3 as time-partitioned Parquet.

Runs on edge nodes, so it never imports dagster; it reports uploads over HTTP or Dagster Pipes.
"""

__version__ = "0.1.0"
