"""A daemon-like loop for tests: landing sensor ticks, automation evaluations and the runs they
request, executed the way the Dagster daemon would, until nothing more is requested.

It stands in for `dagster-daemon` (sensor and automation daemons plus a run launcher) inside the
test process, on a real instance, so every request, run and cursor is real and inspectable.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from edge_agent.contract import SCENARIOS


@dataclass
class DaemonLoop:
    defs: dg.Definitions
    instance: dg.DagsterInstance
    landing: Any  # the LandingZone resource the sensors read
    sensor_cursors: dict[str, str | None] = field(default_factory=dict)
    automation_cursor: Any = None
    runs: list[tuple[str, str | None, bool]] = field(default_factory=list)  # (assets, key, ok)
    before_run: Callable[[list[dg.AssetKey], str | None], None] | None = None

    def _execute(self, keys: list[dg.AssetKey], partition_key: str | None, tags: dict) -> bool:
        if self.before_run is not None:
            self.before_run(keys, partition_key)
        job = self.defs.resolve_implicit_job_def_def_for_assets(keys)
        result = job.execute_in_process(
            instance=self.instance, partition_key=partition_key, asset_selection=keys,
            tags=tags, raise_on_error=False,
        )  # fmt: skip
        name = ",".join(k.to_user_string() for k in keys)
        self.runs.append((name, partition_key, result.success))
        return result.success

    def tick_dead_run_sensor(self) -> str:
        """The daemon ticks `dead_run_sensor` too: runs whose worker died release their slots."""
        sensor = self.defs.resolve_sensor_def("dead_run_sensor")
        result = sensor(dg.build_sensor_context(instance=self.instance))
        return str(getattr(result, "skip_message", result))

    def tick_landing_sensors(self) -> int:
        """One tick of every landing sensor; each request runs at once. Returns runs started."""
        started = 0
        for scenario in SCENARIOS:
            sensor = self.defs.resolve_sensor_def(f"landing_{scenario}_sensor")
            context = dg.build_sensor_context(
                instance=self.instance, resources={"landing": self.landing},
                cursor=self.sensor_cursors.get(sensor.name),
            )  # fmt: skip
            result = sensor(context)
            self.sensor_cursors[sensor.name] = result.cursor
            for event in result.asset_events or []:  # the daemon records a tick's events
                self.instance.report_runless_asset_event(event)
            for request in result.run_requests or []:
                if self._already_launched(sensor.name, request.run_key):
                    continue
                tags = {**request.tags, "dagster/sensor_name": sensor.name,
                        "dagster/run_key": request.run_key or ""}  # fmt: skip
                self._execute(list(request.asset_selection or []), request.partition_key, tags)
                started += 1
        return started

    def _already_launched(self, sensor_name: str, run_key: str | None) -> bool:
        """The daemon launches a run key once per sensor."""
        if not run_key:
            return False
        runs = self.instance.get_runs(
            dg.RunsFilter(tags={"dagster/sensor_name": sensor_name, "dagster/run_key": run_key})
        )
        return bool(runs)

    def evaluate_automation(self) -> int:
        """One automation evaluation; requested partitions run grouped by partition key."""
        result = dg.evaluate_automation_conditions(
            defs=self.defs, instance=self.instance, cursor=self.automation_cursor
        )
        self.automation_cursor = result.cursor
        groups: dict[str | None, list[dg.AssetKey]] = defaultdict(list)
        graph = self.defs.resolve_asset_graph()
        for key in graph.get_all_asset_keys():
            if graph.get(key).is_external:
                continue
            if graph.get(key).partitions_def is None:
                if result.get_num_requested(key):
                    groups[None].append(key)
                continue
            for partition in result.get_requested_partitions(key):
                groups[partition].append(key)
        started = 0
        for partition_key, keys in sorted(groups.items(), key=lambda g: str(g[0])):
            self._execute(keys, partition_key, {"dagster/from_automation_condition": "true"})
            started += 1
        return started

    def run_until_quiet(self, max_rounds: int = 25) -> int:
        """Tick and evaluate until two rounds in a row start nothing; returns rounds used."""
        if self.automation_cursor is None:  # the daemon was running before any data arrived
            self.evaluate_automation()
        quiet = 0
        for round_number in range(1, max_rounds + 1):
            self.tick_dead_run_sensor()
            started = self.tick_landing_sensors() + self.evaluate_automation()
            quiet = quiet + 1 if started == 0 else 0
            if quiet >= 2:
                return round_number
        raise AssertionError(f"not quiet after {max_rounds} rounds: {self.runs[-10:]}")

    def materializations(self, key: str, partition: str | None = None) -> int:
        records = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey(key.split("/")),
                asset_partitions=[partition] if partition else None,
            ),
            limit=1000,
        ).records
        return len(records)


@contextmanager
def dagster_webserver(home: Path, root: Path) -> Iterator[str]:
    """A real dagster-webserver on loopback for the instance in `home` (agents report to it);
    its whole process group is stopped afterwards."""
    from orchestration.demo.local_s3 import free_port, stop_process_group, wait_for_port

    port = free_port()
    webserver = Path(sys.executable).with_name("dagster-webserver")
    proc = subprocess.Popen(
        [str(webserver), "-f", "definitions.py", "-h", "127.0.0.1", "-p", str(port)],
        cwd=root, env={**os.environ, "DAGSTER_HOME": str(home)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_port(port, timeout=120)
        url = f"http://127.0.0.1:{port}"
        urllib.request.urlopen(f"{url}/server_info", timeout=30).read()  # noqa: S310
        yield url
    finally:
        stop_process_group(proc)
