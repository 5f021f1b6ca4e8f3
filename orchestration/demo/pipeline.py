"""Driving the asset graph in one process, the way the daemon would: sensors, then runs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from edge_agent.contract import SCENARIOS
from orchestration.demo.ticks import recorded_tick
from orchestration.lakebase.sensors import CONTINUOUS_INTERVAL_SECONDS
from orchestration.lakebase.workload import SyncPolicy, load_workload
from orchestration.resources import LandingZone
from orchestration.transforms.gold import GOLD_TABLES
from orchestration.transforms.silver import SILVER_TABLE
from orchestration.warehouse import Warehouse

HOURLY_DERIVED = [
    dg.AssetKey(["silver", "sensor_readings"]),
    dg.AssetKey(["gold", "sensor_hourly_stats"]),
    dg.AssetKey(["gold", "region_hourly_stats"]),
    dg.AssetKey(["gold", "anomalies"]),
]
UNPARTITIONED_GOLD = [
    dg.AssetKey(["gold", "fleet_health"]),
    dg.AssetKey(["gold", "readings_all_regions"]),
]

# The demo prints its own progress per stage; Dagster's event stream (DEBUG lines) stays in the
# instance and shows in the UI. `lakehouse-demo --verbose` puts it back on the terminal.
CONSOLE = {"log_level": "WARNING"}


def show_dagster_events(verbose: bool) -> None:
    CONSOLE["log_level"] = "DEBUG" if verbose else "WARNING"


def quiet(run_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """`run_config` with the console logger at the demo's level."""
    return {**(run_config or {}), "loggers": {"console": {"config": dict(CONSOLE)}}}


@dataclass
class SensorRound:
    requests: dict[str, list[dg.RunRequest]] = field(default_factory=dict)
    hours: set[str] = field(default_factory=set)
    failed_runs: list[str] = field(default_factory=list)


def tick_sensors_and_load_bronze(
    defs: dg.Definitions, instance: dg.DagsterInstance, landing: LandingZone
) -> SensorRound:
    """One tick of every landing sensor; each run request executes like the daemon would."""
    outcome = SensorRound()
    for scenario in SCENARIOS:
        sensor = defs.resolve_sensor_def(f"landing_{scenario}_sensor")
        with recorded_tick(instance, sensor.name) as tick:
            context = dg.build_sensor_context(instance=instance, resources={"landing": landing})
            result = sensor(context)
            for event in result.asset_events or []:  # as the daemon records a tick's events
                instance.report_runless_asset_event(event)
            requests = list(result.run_requests or [])
            tick.cursor, tick.skip_reason = result.cursor, _skip_message(result)
            outcome.requests[scenario] = requests
            key = dg.AssetKey(["bronze", scenario])
            job = defs.resolve_implicit_job_def_def_for_assets([key])
            for request in requests:
                run = job.execute_in_process(
                    instance=instance,
                    partition_key=request.partition_key,
                    asset_selection=[key],
                    tags={**request.tags, "dagster/sensor_name": sensor.name},
                    raise_on_error=False,
                    run_config=quiet(),
                )
                tick.run_ids.append(run.run_id)
                if not run.success:
                    outcome.failed_runs.append(f"bronze/{scenario} {request.partition_key}")
                outcome.hours.add(str(request.partition_key).split("|")[0])
    return outcome


def _skip_message(result: dg.SensorResult | dg.SkipReason | None) -> str | None:
    skip = getattr(result, "skip_reason", None) if isinstance(result, dg.SensorResult) else result
    return getattr(skip, "skip_message", None)


def build_derived(
    defs: dg.Definitions, instance: dg.DagsterInstance, hours: Iterable[str]
) -> list[str]:
    """Silver and gold for the hours bronze changed, then the unpartitioned gold assets."""
    failed = []
    job = defs.resolve_implicit_job_def_def_for_assets(HOURLY_DERIVED)
    for hour in sorted(hours):
        run = job.execute_in_process(
            instance=instance, partition_key=hour, asset_selection=HOURLY_DERIVED,
            raise_on_error=False, run_config=quiet(),
        )  # fmt: skip
        if not run.success:
            failed.append(f"silver/gold {hour}")
    job = defs.resolve_implicit_job_def_def_for_assets(UNPARTITIONED_GOLD)
    if not job.execute_in_process(
        instance=instance,
        asset_selection=UNPARTITIONED_GOLD,
        raise_on_error=False,
        run_config=quiet(),
    ).success:
        failed.append("gold fleet_health / readings_all_regions")
    return failed


LAKEBASE_AND_REPORTS = dg.AssetSelection.groups("lakebase", "reports")


def sync_and_report(defs: dg.Definitions, instance: dg.DagsterInstance) -> list[str]:
    """Every synced table into Postgres, then the cost reports, the bundle and a short load
    test of the dashboard queries (4 clients, 2 s)."""
    job = defs.resolve_implicit_job_def_def_for_assets(
        list(LAKEBASE_AND_REPORTS.resolve(defs.resolve_asset_graph()))
    )
    load = {"ops": {"reports__query_load": {"config": {"clients": 4, "seconds": 2.0}}}}
    run = job.execute_in_process(
        instance=instance, asset_selection=list(LAKEBASE_AND_REPORTS.resolve(
            defs.resolve_asset_graph())), raise_on_error=False, run_config=quiet(load),
    )  # fmt: skip
    return [] if run.success else ["lakebase / reports"]


@dataclass(frozen=True)
class ContinuousLag:
    table: str
    seconds: float  # source materialized -> synced table committed, measured
    bound_seconds: int  # sensor interval; plus the pool queue and the sync itself


def continuous_lag(defs: dg.Definitions, instance: dg.DagsterInstance) -> list[ContinuousLag]:
    """For each CONTINUOUS table: its source changes (rebuilt), the sensor ticks, and the run
    it requests syncs; the lag from the change to the synced copy is measured."""
    out = []
    for spec in load_workload().delta_synchronization.tables_to_sync:
        if spec.scheduling_policy is not SyncPolicy.CONTINUOUS:
            continue
        source = defs.resolve_implicit_job_def_def_for_assets([spec.source_asset_key])
        source.execute_in_process(
            instance=instance, asset_selection=[spec.source_asset_key], run_config=quiet()
        )
        changed = instance.get_latest_materialization_event(spec.source_asset_key)
        sensor = defs.resolve_sensor_def(f"lakebase_{spec.name}_continuous")
        result = sensor(dg.build_sensor_context(instance=instance))
        job = defs.resolve_implicit_job_def_def_for_assets([spec.asset_key])
        for request in result.run_requests or []:
            tags = {**request.tags, "dagster/sensor_name": sensor.name}
            job.execute_in_process(
                instance=instance, asset_selection=[spec.asset_key], tags=tags,
                run_config=quiet(),
            )  # fmt: skip
        synced = instance.get_latest_materialization_event(spec.asset_key)
        if changed is None or synced is None or synced.timestamp < changed.timestamp:
            raise RuntimeError(f"the continuous sensor did not sync {spec.name}")
        out.append(ContinuousLag(spec.name, synced.timestamp - changed.timestamp,
                                 CONTINUOUS_INTERVAL_SECONDS))  # fmt: skip
    return out


def layer_counts(warehouse: Warehouse) -> list[tuple[str, int]]:
    gold = [spec.entity for spec in GOLD_TABLES] + ["fleet_health", "readings_all_regions"]
    tables = [f"bronze_{s}" for s in SCENARIOS] + [SILVER_TABLE] + [f"gold_{e}" for e in gold]
    out = []
    with warehouse.connect(read_only=True) as conn:
        present = {
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema() AND table_catalog = current_database()"
            ).fetchall()
        }
        for table in tables:
            if table in present:
                count = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]  # type: ignore[index]
                out.append((table, int(count)))
    return out
