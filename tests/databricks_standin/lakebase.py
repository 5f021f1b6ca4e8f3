"""Lakebase objects in the stand-in: database instances, catalogs, synced tables.

Starting a synced table's pipeline copies its source table (the Parquet the local Spark jobs
wrote) into the real PostgreSQL the stand-in was given, the way the service fills the Postgres
table from the Delta table.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from pathlib import Path
from typing import Any


class LakebaseState:
    def __init__(self, tables: Path, postgres_dsn: str | None) -> None:
        self.tables = tables
        self.postgres_dsn = postgres_dsn
        self.objects: dict[str, dict[str, dict[str, Any]]] = {
            "instances": {},
            "catalogs": {},
            "synced_tables": {},
        }
        self.pipelines: dict[str, str] = {}  # pipeline id -> synced table name
        self.credentials: dict[str, float] = {}  # token -> expiry
        self.credential_ttl_seconds = 3600.0
        self.lock = threading.Lock()
        self.sync_lock = threading.Lock()  # one sync at a time, as a pipeline runs one update

    def create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body["name"]
        with self.lock:
            if name in self.objects[kind]:
                raise FileExistsError(name)
            created = dict(body)
            if kind == "instances":
                created |= {"state": "AVAILABLE", "uid": uuid.uuid4().hex,
                            "read_write_dns": self._postgres_host()}  # fmt: skip
            if kind == "catalogs" and body.get("create_database_if_not_exists"):
                self._create_database(body["database_name"])
            if kind == "synced_tables":
                pipeline = uuid.uuid4().hex
                self.pipelines[pipeline] = name
                created["data_synchronization_status"] = {
                    "detailed_state": "SYNCED_TABLE_PROVISIONING_INITIAL_SNAPSHOT",
                    "pipeline_id": pipeline,
                }
            self.objects[kind][name] = created
        if kind == "synced_tables":  # the initial snapshot, as the service starts it
            threading.Thread(target=self._sync, args=(name,), daemon=True).start()
        return created

    def _postgres_host(self) -> str:
        if self.postgres_dsn is None:
            return "127.0.0.1"
        from psycopg.conninfo import conninfo_to_dict

        return str(conninfo_to_dict(self.postgres_dsn).get("host") or "127.0.0.1")

    def _database_dsn(self, database: str) -> str | None:
        if self.postgres_dsn is None:
            return None
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        return make_conninfo(**{**conninfo_to_dict(self.postgres_dsn), "dbname": database})

    def _create_database(self, database: str) -> None:
        if self.postgres_dsn is None:
            return
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.postgres_dsn, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database])
            if exists.fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))

    def get(self, kind: str, name: str) -> dict[str, Any]:
        return self.objects[kind][name]

    def start_update(self, pipeline_id: str, body: dict[str, Any]) -> dict[str, Any]:
        name = self.pipelines[pipeline_id]
        status = self.objects["synced_tables"][name]["data_synchronization_status"]
        status["detailed_state"] = "SYNCED_TABLE_UPDATING"  # before this call returns
        threading.Thread(target=self._sync, args=(name,), daemon=True).start()
        return {"update_id": uuid.uuid4().hex}

    def credential(self, body: dict[str, Any]) -> dict[str, Any]:
        token = secrets.token_urlsafe(24)
        expires = time.time() + self.credential_ttl_seconds
        self.credentials[token] = expires
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
        return {"token": token, "expiration_time": stamp}

    def _sync(self, name: str) -> None:
        with self.sync_lock:
            self._sync_one(name)

    def _sync_one(self, name: str) -> None:
        table = self.objects["synced_tables"][name]
        status = table["data_synchronization_status"]
        status["detailed_state"] = "SYNCED_TABLE_UPDATING"
        try:
            rows = self._copy(table)
        except Exception as exc:  # reported through the table's state, as the service does
            status["detailed_state"] = "SYNCED_TABLE_FAILED"
            status["message"] = f"{type(exc).__name__}: {exc}"
            return
        status["detailed_state"] = "SYNCED_TABLE_ONLINE"
        status["message"] = f"{rows} rows synced"
        status["last_sync"] = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    def _copy(self, table: dict[str, Any]) -> int:
        import psycopg
        import pyarrow as pa
        from deltalake import DeltaTable
        from psycopg import sql

        source = table["spec"]["source_table_full_name"]  # catalog.schema.table
        catalog, schema, name = source.split(".")
        data = pa.table(DeltaTable(str(self.tables / catalog / schema / name)).to_pyarrow_table())
        dsn = self._database_dsn(table["logical_database_name"])
        if dsn is None:
            return data.num_rows
        target_schema, target = table["name"].split(".")[1:]
        columns = data.column_names
        with psycopg.connect(dsn) as conn:
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(target_schema))
            )
            conn.execute(
                sql.SQL("DROP TABLE IF EXISTS {}.{}").format(
                    sql.Identifier(target_schema), sql.Identifier(target)
                )
            )
            types = {
                "int64": "bigint",
                "double": "double precision",
                "string": "text",
                "large_string": "text",
                "bool": "boolean",
            }
            definition = sql.SQL(", ").join(
                sql.SQL("{} {}").format(
                    sql.Identifier(f.name),
                    sql.SQL(
                        "timestamptz"
                        if str(f.type).startswith("timestamp")
                        else types.get(str(f.type), "text")
                    ),
                )
                for f in data.schema
            )
            conn.execute(
                sql.SQL("CREATE TABLE {}.{} ({})").format(
                    sql.Identifier(target_schema), sql.Identifier(target), definition
                )
            )
            with conn.cursor().copy(
                sql.SQL("COPY {}.{} ({}) FROM STDIN").format(
                    sql.Identifier(target_schema),
                    sql.Identifier(target),
                    sql.SQL(", ").join(map(sql.Identifier, columns)),
                )
            ) as copy:
                for row in data.to_pylist():
                    copy.write_row([row[c] for c in columns])
        return data.num_rows
