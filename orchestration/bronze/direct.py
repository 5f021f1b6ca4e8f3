"""The direct path: DuckDB reads verified landing objects straight from S3 (httpfs).

An object qualifies when its listing ETag equals the MD5 its sidecar records: for a single-part
upload S3's ETag is the MD5 of the content, so the bytes are verified without downloading them
in Python. DuckDB then reads every qualifying object of the run in one parallel scan.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import boto3
import duckdb

from edge_agent.source import quote_literal
from orchestration.landing.objects import LandingObject


def etag_verifies(obj: LandingObject, sidecar: dict[str, Any]) -> bool:
    md5 = sidecar.get("content_md5")
    return bool(md5) and "-" not in obj.etag and obj.etag == md5


def enable_s3(conn: duckdb.DuckDBPyConnection, region: str, endpoint: str | None) -> bool:
    """Give this connection read access to S3 with boto3's credentials; False if it cannot."""
    import duckdb_extensions

    credentials = boto3.Session().get_credentials()
    if credentials is None:
        return False
    frozen = credentials.get_frozen_credentials()
    duckdb_extensions.import_extension("httpfs", con=conn)
    conn.execute("LOAD httpfs")
    # Footers are read to check schemas and row counts, then again by the load itself.
    conn.execute("SET parquet_metadata_cache = true")
    conn.execute("SET enable_http_metadata_cache = true")
    options = [
        "TYPE s3",
        f"KEY_ID {quote_literal(frozen.access_key)}",
        f"SECRET {quote_literal(frozen.secret_key)}",
        f"REGION {quote_literal(region)}",
    ]
    if frozen.token:
        options.append(f"SESSION_TOKEN {quote_literal(frozen.token)}")
    if endpoint:
        url = urlparse(endpoint)
        options += [
            f"ENDPOINT {quote_literal(url.netloc)}",
            "URL_STYLE 'path'",
            f"USE_SSL {'true' if url.scheme == 'https' else 'false'}",
        ]
    # A temporary secret: it lives in this connection's memory only, never in the file.
    conn.execute(f"CREATE OR REPLACE TEMPORARY SECRET landing_s3 ({', '.join(options)})")
    return True


def one_schema(conn: duckdb.DuckDBPyConnection, uris: list[str]) -> bool:
    """Whether every object has the same columns and types (else each is reconciled alone)."""
    try:
        rows = _signatures(conn, uris)
    except duckdb.Error:  # an unreadable footer: the object-by-object path will say which
        return False
    return bool(rows and rows[0] == 1)


def _signatures(conn: duckdb.DuckDBPyConnection, uris: list[str]) -> tuple[Any, ...] | None:
    return conn.execute(
        "SELECT count(DISTINCT signature) FROM (SELECT file_name, "
        "string_agg(name || ' ' || coalesce(type, '') || ' ' || coalesce(logical_type, ''), ', ' "
        "ORDER BY name) AS signature FROM parquet_schema(?) GROUP BY file_name)",
        [uris],
    ).fetchone()
