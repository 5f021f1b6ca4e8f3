"""What users write first: pandas read_sql of the whole table, to_parquet, upload_file."""

from __future__ import annotations

import sqlite3
import sys
import tempfile
from pathlib import Path

import boto3
import pandas as pd


def main(db: str, bucket: str) -> None:
    with sqlite3.connect(db) as conn:
        frame = pd.read_sql("SELECT * FROM sensor_readings", conn)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "batch.parquet"
        frame.to_parquet(path, compression="zstd")
        boto3.client("s3").upload_file(str(path), bucket, "naive/batch.parquet")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
