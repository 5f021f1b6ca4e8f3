"""The Databricks engine: each load or build is one Databricks job run through Dagster Pipes
(`job/lakehouse_job.py`), tables are Delta in Unity Catalog, synced tables are Lakebase's."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import dagster as dg

from orchestration.bronze.admission import LandingLimits, column_problem
from orchestration.bronze.figures import BronzeLoad, BronzeRequest, PartitionLoad
from orchestration.bronze.objects import (
    AdmittedObject,
    QuarantinedObject,
    lineage,
    read_columns,
    reason,
)
from orchestration.databricks import plan
from orchestration.databricks.lakebase_api import (
    LakebaseSyncError,
    ensure_lakebase,
    postgres_rows,
    sync_and_wait,
)
from orchestration.databricks.workspace import Databricks
from orchestration.engine import (
    EngineError,
    FleetHealthBuild,
    GoldBuild,
    LakehouseEngine,
    SilverBuild,
    SyncBuild,
    ViewBuild,
)
from orchestration.lakebase.bundle import bundle_resources
from orchestration.lakebase.workload import TableToSync, load_workload
from orchestration.landing.objects import hour_key
from orchestration.silver.figures import HourViolations, hour_figures
from orchestration.transforms.expectations import EXPECTATIONS
from orchestration.transforms.gold import GoldTable


class DatabricksEngine(LakehouseEngine):
    """Delta tables in Unity Catalog, built by one job run per asset per Dagster run through the
    `databricks` resource (the workspace), which the assets require on this engine."""

    engine: str = "databricks"

    def discovers_objects(self) -> bool:
        workspace = self.settings().databricks
        return workspace is not None and workspace.bronze_discovery == "autoloader"

    def _run(
        self, context: dg.AssetExecutionContext, step: str, extras: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        return _workspace(context).run_step(context, step, extras)

    # -- bronze -------------------------------------------------------------------------

    def load_bronze(self, context: dg.AssetExecutionContext, request: BronzeRequest) -> BronzeLoad:
        settings = self.settings()
        if self.discovers_objects():
            return self._autoloader(context, request)
        # The footers' columns, as DuckDB checks them: a bad object quarantines, a transient
        # read fails the step.
        with ThreadPoolExecutor(16) as pool:
            entries = list(
                pool.map(lambda a: _object_entry(request.client, a, request.limits),
                         request.admitted)
            )  # fmt: skip
        objects = [e for e in entries if not isinstance(e, QuarantinedObject)]
        load = BronzeLoad(partitions={t.partition_key: PartitionLoad() for t in request.targets})
        load.quarantined += request.refused
        load.quarantined += [e for e in entries if isinstance(e, QuarantinedObject)]
        extras = plan.bronze_extras(
            settings, request.table, request.targets, objects, request.mode, request.column_types
        )
        figures, run = self._run(context, "bronze", extras)
        if figures.get("refused"):  # as on DuckDB: a retry cannot accept the new columns
            raise EngineError(figures["refused"])
        by_uri = {obj.uri: obj for _, obj in request.listed}
        load.quarantined += [  # the job sends kinds; worded as on DuckDB
            QuarantinedObject(_known(by_uri, q["uri"], "object"), reason(q["kind"], q["detail"]))
            for q in figures.get("quarantined", [])
        ]
        partition_of = {o.uri: t.partition_key for t, o in [*request.listed, *request.incomplete]}
        for q in load.quarantined:
            load.partitions[partition_of[q.obj.uri]].quarantined += 1
        for figure, field in (("rows", "rows"), ("objects", "objects"), ("bytes", "bytes")):
            for key, value in figures.get(f"{figure}_by_partition", {}).items():
                setattr(_known(load.partitions, key, "partition"), field, int(value))
        load.rows = sum(p.rows for p in load.partitions.values())
        load.objects = int(figures.get("objects", 0))
        load.bytes = int(figures.get("bytes", 0))
        load.renamed_columns = dict(figures.get("renamed_columns", []))
        load.rescued_rows = load.objects_bulk_loaded = load.added_columns = None  # not counted
        load.columns = [(name, kind) for name, kind in figures.get("columns", [])]
        load.shown = run
        return load

    def _autoloader(self, context: dg.AssetExecutionContext, request: BronzeRequest) -> BronzeLoad:
        """Opt-in: Auto Loader discovers and loads every new object of the scenario's buckets."""
        buckets = sorted({t.bucket for t in request.targets})
        extras = plan.autoloader_extras(self.settings(), request.table, buckets, request.mode)
        figures, run = self._run(context, "bronze", extras)
        context.log.warning(
            "Auto Loader discovery: rows of any hour may have been loaded (the checkpoint "
            "decides), and objects were not checked against their sidecars"
        )
        return BronzeLoad(
            rows=int(figures.get("autoloader_rows") or 0),
            checked=False,
            shown={**run, "discovery": "autoloader"},
        )

    # -- silver -------------------------------------------------------------------------

    def build_silver(
        self, context: dg.AssetExecutionContext, start: datetime, end: datetime
    ) -> SilverBuild:
        extras = plan.silver_extras(self.settings(), start, end)
        figures, run = self._run(context, "silver", extras)
        by_hour = {
            _key(hour): HourViolations(
                int(rows), {e.name: int(c.get(e.name, 0)) for e in EXPECTATIONS}
            )
            for hour, rows, c in figures.get("violations_by_hour", [])
        }
        hours = hour_figures(
            [(_key(h), n) for h, n in figures.get("rows_in_by_hour", [])],
            [(_key(h), n) for h, n in figures.get("kept_by_hour", [])],
            [(_key(h), s, n) for h, s, n in figures.get("written_by_hour", [])],
        )
        return SilverBuild(
            by_hour,
            blocked=bool(figures.get("blocked")),
            hours=hours,
            rows_in=int(figures.get("rows_in", 0)),
            shown=run,
        )

    # -- gold ---------------------------------------------------------------------------

    def build_hourly_gold(
        self, context: dg.AssetExecutionContext, spec: GoldTable, start: datetime, end: datetime
    ) -> GoldBuild:
        extras = plan.hourly_gold_extras(self.settings(), spec, start, end)
        figures, run = self._run(context, "gold", extras)
        return GoldBuild({_key(h): int(n) for h, n in figures.get("rows_by_hour", [])}, run)

    def build_fleet_health(
        self, context: dg.AssetExecutionContext, silent_after_hours: int
    ) -> FleetHealthBuild:
        extras = plan.fleet_health_extras(self.settings())
        figures, run = self._run(context, "gold", extras)
        return FleetHealthBuild(
            rows=int(figures.get("rows", 0)),
            nodes=int(figures.get("nodes", 0)),
            silent=int(figures.get("silent", 0)),
            silent_sensors=[
                (node, sensor, datetime.fromisoformat(at))
                for node, sensor, at in figures.get("silent_sensors", [])
            ],
            shown=run,
        )

    def build_view(self, context: dg.AssetExecutionContext, entity: str, select: str) -> ViewBuild:
        extras = plan.view_extras(self.settings(), f"gold_{entity}", select)
        figures, run = self._run(context, "gold", extras)
        by_region = figures.get("rows_by_region")
        return ViewBuild(
            {str(k): int(v) for k, v in by_region} if by_region is not None else None, run
        )

    # -- serving ------------------------------------------------------------------------

    def sync_table(self, context: dg.AssetExecutionContext, spec: TableToSync) -> SyncBuild:
        resources = bundle_resources(load_workload(), self.settings())["resources"]
        workspace = _workspace(context)
        client = workspace.client()
        table = resources["synced_database_tables"][spec.name]
        try:
            _, ensured = ensure_lakebase(client, resources, spec.name)
            state = sync_and_wait(client, table["name"], workspace.settings().timeout_seconds)
        except LakebaseSyncError as exc:
            raise dg.Failure(description=str(exc)) from exc
        rows = postgres_rows(
            client, table["database_instance_name"], table["logical_database_name"], table["name"]
        )
        created = ", ".join(ensured.created)
        return SyncBuild(
            table=table["name"],
            rows=rows,
            message=f"{table['name']}: {state}" + (f"; created {created}" if created else ""),
            shown={
                "synced_table": table["name"],
                "source_table": table["spec"]["source_table_full_name"],
                "state": state,
                "created": created or "none (all existed)",
            },
        )


def _workspace(context: dg.AssetExecutionContext) -> Databricks:
    return context.resources.databricks


def _known(found: dict[str, Any], key: str, what: str) -> Any:
    """What the job named, among what Dagster sent it; a job that names anything else is not
    this version's (a stale script in the Volume?): fail in one sentence."""
    if key not in found:
        raise dg.Failure(description=f"the Databricks job reported an unknown {what} {key!r}")
    return found[key]


def _key(iso_hour: str) -> str:
    return hour_key(datetime.fromisoformat(iso_hour))


def _object_entry(
    client: Any, admitted: AdmittedObject, limits: LandingLimits
) -> dict[str, Any] | QuarantinedObject:
    """What the job needs to verify and load one admitted object: the sidecar's checksum and
    rows and the footer's columns, or the object quarantined for its column names, as the
    DuckDB engine does. The job checks the bytes."""
    target, obj, sidecar = admitted.target, admitted.obj, admitted.sidecar
    columns = read_columns(client, obj, limits)
    if isinstance(columns, QuarantinedObject):
        return columns
    problem = column_problem(columns, (), limits)  # the job checks them against its table
    if problem is not None:
        return QuarantinedObject(obj, problem)
    return {
        "uri": obj.uri,
        "etag": obj.etag,
        "size": obj.size,
        "sha256": sidecar.content_sha256,
        "rows": sidecar.row_count,
        "columns": columns.names,
        "partition_key": target.partition_key,
        "lineage": {**lineage(obj, sidecar, target), "_partition_hour": target.hour.isoformat()},
    }
