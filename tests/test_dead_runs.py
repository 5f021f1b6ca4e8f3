"""A run killed while it holds the `warehouse` pool slot does not block later runs (issue 9.7),
and a run whose worker ran on another host is never judged by this host's pids (issue 17.11).

Real pieces: `dagster asset materialize` processes on one instance (the project's dagster.yaml,
pool limit 1), moto S3, a DuckDB file, SIGKILL. The sensor is ticked the way the daemon ticks it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from orchestration.maintenance.dead_runs import dead_run_sensor
from orchestration.maintenance.worker_host import (
    BOOT_TAG,
    HOST_TAG,
    MACHINE_TAG,
    PID_NAMESPACE_TAG,
    RUN_TAG,
    WorkerPlace,
    worker_identity,
    worker_place,
)
from orchestration.resources import LandingZone
from tests.lakehouse import NOW, hour_key, put_object, reading

ROOT = Path(__file__).resolve().parents[1]


def _materialize(home: Path, env: dict[str, str], prefix: str, hour: Any) -> subprocess.Popen:
    config = f'{{"resources": {{"landing": {{"config": {{"bucket_prefix": "{prefix}"}}}}}}}}'
    return subprocess.Popen(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-f", "definitions.py",
         "--select", "bronze/raw", "--partition", hour_key(hour), "--config-json", config],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_killed_bronze_run_frees_the_warehouse_slot_and_its_staging(
    tmp_path: Path, s3: Any, s3_env: str, bucket_prefix: str
) -> None:
    landing = LandingZone(bucket_prefix=bucket_prefix, endpoint_url=s3_env)
    first, second = NOW - timedelta(hours=2), NOW - timedelta(hours=1)
    for n in range(150):  # enough objects that the load takes a moment to kill it in
        put_object(s3, landing.bucket("raw"), first, [reading(n, first)], node=f"n{n:03d}")
    put_object(s3, landing.bucket("raw"), second, [reading(1, second)])
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    instance = dg.DagsterInstance.from_config(str(home))

    killed = _materialize(home, env, bucket_prefix, first)

    def holding_slot() -> bool:
        return bool(instance.event_log_storage.get_concurrency_info("warehouse").claimed_slots)

    def staged() -> bool:
        staging = home / "staging_dev"
        return staging.exists() and any(staging.glob("bronze-*/*.parquet"))

    _wait(lambda: holding_slot() and staged(), 120, "the first run to hold the slot and stage")
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    (run,) = instance.get_run_records(limit=1)
    assert run.dagster_run.status == dg.DagsterRunStatus.STARTED  # what Dagster alone leaves

    waiting = _materialize(home, env, bucket_prefix, second)
    try:
        _wait(
            lambda: bool(
                instance.event_log_storage.get_concurrency_info("warehouse").pending_steps
            ),
            120,
            "the second run to queue for the slot",
        )
        time.sleep(2)
        assert waiting.poll() is None  # blocked behind the dead run's slot
        result = dead_run_sensor(dg.build_sensor_context(instance=instance))
        assert "failed 1 run(s) whose worker died" in str(result.skip_message)
        assert waiting.wait(timeout=120) == 0, waiting.stderr.read() if waiting.stderr else ""
    finally:
        if waiting.poll() is None:
            os.killpg(waiting.pid, signal.SIGKILL)
    dead = instance.get_run_by_id(run.dagster_run.run_id)
    assert dead is not None and dead.status == dg.DagsterRunStatus.FAILURE
    assert not instance.event_log_storage.get_concurrency_info("warehouse").claimed_slots
    # The next load swept what the killed one staged.
    assert not list((home / "staging_dev").glob("bronze-*"))
    again = dead_run_sensor(dg.build_sensor_context(instance=instance))
    assert "every started run has a live worker" in str(again.skip_message)


def _kill_while_holding_the_slot(
    tmp_path: Path, s3: Any, s3_env: str, bucket_prefix: str
) -> tuple[dg.DagsterInstance, str]:
    """A bronze run SIGKILLed while it holds the warehouse slot; its instance and run id."""
    landing = LandingZone(bucket_prefix=bucket_prefix, endpoint_url=s3_env)
    hour = NOW - timedelta(hours=2)
    for n in range(100):
        put_object(s3, landing.bucket("raw"), hour, [reading(n, hour)], node=f"n{n:03d}")
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(home))
    killed = _materialize(home, {**os.environ, "DAGSTER_HOME": str(home)}, bucket_prefix, hour)
    _wait(
        lambda: bool(instance.event_log_storage.get_concurrency_info("warehouse").claimed_slots),
        120,
        "the run to hold the slot",
    )
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    (run,) = instance.get_run_records(limit=1)
    return instance, run.dagster_run.run_id


def test_a_dead_run_from_another_host_is_left_alone_and_one_from_this_host_is_failed(
    tmp_path: Path, s3: Any, s3_env: str, bucket_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    instance, run_id = _kill_while_holding_the_slot(tmp_path, s3, s3_env, bucket_prefix)

    def status() -> dg.DagsterRunStatus:
        run = instance.get_run_by_id(run_id)
        assert run is not None
        return run.status

    def slot_held() -> bool:
        return bool(instance.event_log_storage.get_concurrency_info("warehouse").claimed_slots)

    # The run worker recorded where it ran before it claimed the slot.
    recorded = instance.get_run_by_id(run_id)
    assert recorded is not None
    tags = dict(recorded.tags)
    assert tags[HOST_TAG] == socket.gethostname()
    assert worker_place(run_id, tags, worker_identity()) == WorkerPlace.HERE

    # A run on another machine sharing this instance looks like this: its pid is dead *here*.
    instance.add_run_tags(
        run_id, {HOST_TAG: "edge-gateway-2", MACHINE_TAG: "0" * 16, BOOT_TAG: "other-boot"}
    )
    capsys.readouterr()
    context = dg.build_sensor_context(instance=instance)
    result = dead_run_sensor(context)
    assert "left alone 1 run(s) started on another host" in str(result.skip_message)
    assert status() == dg.DagsterRunStatus.STARTED and slot_held()
    assert json.loads(context.cursor or "{}") == {"left_alone": [run_id]}
    logged = capsys.readouterr().err  # the sensor's log (the daemon keeps it with the tick)
    assert logged.count("edge-gateway-2") == 1 and "left alone" in logged
    again = dead_run_sensor(dg.build_sensor_context(instance=instance, cursor=context.cursor))
    assert "left alone 1 run(s)" in str(again.skip_message)
    assert "edge-gateway-2" not in capsys.readouterr().err  # logged once, not every tick
    assert status() == dg.DagsterRunStatus.STARTED and slot_held()

    # A run whose host is not recorded at all is left alone too.
    instance.add_run_tags(run_id, {HOST_TAG: ""})
    unknown = dead_run_sensor(dg.build_sensor_context(instance=instance))
    assert "left alone 1 run(s)" in str(unknown.skip_message) and slot_held()

    # The same run, recorded as this host's: failed and its slot freed.
    instance.add_run_tags(run_id, worker_identity(run_id))
    here = dead_run_sensor(dg.build_sensor_context(instance=instance))
    assert "failed 1 run(s) whose worker died" in str(here.skip_message)
    assert status() == dg.DagsterRunStatus.FAILURE and not slot_held()


def test_where_a_worker_ran_is_judged_from_its_tags() -> None:
    here = {HOST_TAG: "vm", MACHINE_TAG: "m1", BOOT_TAG: "b1", PID_NAMESPACE_TAG: "pid:[1]",
            RUN_TAG: "r1"}  # fmt: skip
    assert worker_place("r1", dict(here), here) == WorkerPlace.HERE
    assert worker_place("r1", {}, here) == WorkerPlace.UNKNOWN
    assert worker_place("r1", {**here, HOST_TAG: "vm2"}, here) == WorkerPlace.ELSEWHERE
    assert worker_place("r1", {**here, MACHINE_TAG: "m2"}, here) == WorkerPlace.ELSEWHERE
    assert worker_place("r1", {**here, PID_NAMESPACE_TAG: "pid:[2]"}, here) == WorkerPlace.ELSEWHERE
    # This machine before a reboot: the worker died with the boot, whatever its pid is now.
    assert worker_place("r1", {**here, BOOT_TAG: "b0"}, here) == WorkerPlace.BEFORE_REBOOT
    # Same name, another boot, and no machine id: a namesake or a reboot, nobody can tell.
    no_machine = {k: v for k, v in here.items() if k != MACHINE_TAG}
    assert worker_place("r1", {**no_machine, BOOT_TAG: "b0"}, no_machine) == WorkerPlace.UNKNOWN
    # Where the platform cannot read a boot id, the host name alone decides.
    assert worker_place("r1", {HOST_TAG: "vm", RUN_TAG: "r1"}, {HOST_TAG: "vm"}) == WorkerPlace.HERE
    # A retry carries its parent's tags until its own worker records them: not judged by them.
    assert worker_place("r2", dict(here), here) == WorkerPlace.UNKNOWN
