"""Runs whose worker process died (SIGKILL, OOM, a reboot) are failed and release their pools.

Dagster's default run launcher cannot check a run worker's health, so a killed run stays
STARTED and keeps its `warehouse` pool slot: every later warehouse run would wait forever.
This sensor, run by the daemon, finds such runs on this host by the pid their RUN_START event
recorded, marks them failed and frees their slots. A pid only means something where it was
issued: the sensor judges a run only when its worker-host tags (see `worker_host`) name this
machine, boot and pid namespace, or this machine before a reboot; any other run is left alone,
so a run still writing on another host keeps its slot. Dagster's own monitoring daemon
(`run_monitoring.free_slots_after_run_end_seconds` in dagster.yaml) frees slots that runs kept
after they ended. On Kubernetes (dagster-k8s) the run launcher's health checks do this job, and
the sensor leaves runs alone: it only acts with the default, local run launcher.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import dagster as dg

from orchestration.maintenance.processes import is_alive
from orchestration.maintenance.worker_host import (
    HOST_TAG,
    WorkerPlace,
    worker_identity,
    worker_place,
)

DEAD_RUN_INTERVAL_SECONDS = 15
_ACTIVE = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


@dataclass(frozen=True)
class DeadRun:
    run_id: str
    job_name: str
    pid: int


@dataclass(frozen=True)
class UnjudgedRun:
    """A started run whose worker this host cannot check: another machine, or unknown."""

    run_id: str
    job_name: str
    place: WorkerPlace
    host: str | None

    def where(self) -> str:
        if self.host is None:
            return "on a host it did not record"
        if self.place == WorkerPlace.ELSEWHERE:
            return f"on {self.host}, another machine or container"
        return f"on {self.host} in another boot, and no machine id tells whether this one"


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """The pid that started the run, and when, from its RUN_START event."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.RUN_START, limit=1
    ).records
    if not records:
        return None
    entry = records[0].event_log_entry
    pid = entry.dagster_event.pid if entry.dagster_event else None
    return (pid, entry.timestamp) if pid else None


def dead_runs(instance: dg.DagsterInstance) -> tuple[list[DeadRun], list[UnjudgedRun]]:
    """Started or canceling runs whose worker process on this host is gone, and the runs whose
    worker this host cannot judge (left alone: their pid names no process here)."""
    here = worker_identity()
    dead, unjudged = [], []
    for record in instance.get_run_records(dg.RunsFilter(statuses=_ACTIVE), limit=500):
        run = record.dagster_run
        worker = worker_pid(instance, run.run_id)
        if worker is None:
            continue  # not started yet: no worker to judge
        place = worker_place(run.run_id, dict(run.tags), here)
        if place in (WorkerPlace.ELSEWHERE, WorkerPlace.UNKNOWN):
            unjudged.append(
                UnjudgedRun(run.run_id, run.job_name, place, run.tags.get(HOST_TAG) or None)
            )
        elif place == WorkerPlace.BEFORE_REBOOT or not is_alive(
            worker[0], started_before=worker[1]
        ):
            dead.append(DeadRun(run.run_id, run.job_name, worker[0]))
    return dead, unjudged


def release_dead_run(instance: dg.DagsterInstance, dead: DeadRun) -> None:
    """Fail the run (a killed run did not succeed) and free every pool slot it held."""
    run = instance.get_run_by_id(dead.run_id)
    if run is None or run.status not in _ACTIVE:
        return
    message = (
        f"run worker (pid {dead.pid}) is gone (killed or crashed): marked failed by "
        "dead_run_sensor; its pool slots are freed and its partitions can run again"
    )
    if run.status == dg.DagsterRunStatus.CANCELING:
        instance.report_run_canceled(run, message)
    else:
        instance.report_run_failed(run, message)
    instance.event_log_storage.free_concurrency_slots_for_run(dead.run_id)


def _local_launcher(instance: dg.DagsterInstance) -> bool:
    return type(instance.run_launcher).__name__ == "DefaultRunLauncher"


def _left_alone(cursor: str | None) -> set[str]:
    return set(json.loads(cursor)["left_alone"]) if cursor else set()


@dg.sensor(
    name="dead_run_sensor",
    minimum_interval_seconds=DEAD_RUN_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Fails runs whose worker process on this host died (killed, crashed) and frees their "
        "pool slots, so the warehouse pool never stays blocked; with the local run launcher "
        "only. Runs whose worker ran on another host (or an unknown one) are left alone. "
        'Cursor: {"left_alone": [run ids]}, the active runs already logged as left alone.'
    ),
)
def dead_run_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    if not _local_launcher(context.instance):
        return dg.SkipReason("the run launcher checks run worker health itself")
    dead, unjudged = dead_runs(context.instance)
    logged = _left_alone(context.cursor)
    for other in unjudged:
        if other.run_id not in logged:  # once per run, not every 15 s
            context.log.info(
                f"run {other.run_id} ({other.job_name}): its worker ran {other.where()}; "
                "left alone, as its pid cannot be checked here"
            )
    context.update_cursor(json.dumps({"left_alone": sorted(r.run_id for r in unjudged)}))
    for run in dead:
        context.log.warning(f"run {run.run_id} ({run.job_name}): worker pid {run.pid} is gone")
        release_dead_run(context.instance, run)
    others = f"; left alone {len(unjudged)} run(s) started on another host" if unjudged else ""
    if not dead:
        return dg.SkipReason(f"every started run has a live worker{others}")
    return dg.SkipReason(
        f"failed {len(dead)} run(s) whose worker died; their slots are free{others}"
    )
