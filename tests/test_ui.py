"""The Dagster UI in a real browser (Debian's Chromium through Playwright), on the instance the
main demo left: what a new user opens first must render, and a run started from the UI must
succeed. Screenshots are kept under `test-artifacts/ui/` (CI keeps them as artifacts)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from orchestration.demo.local_s3 import free_port, stop_process_group, wait_for_port
from tests.conftest import DemoRun

ROOT = Path(__file__).parent.parent
SCREENSHOTS = ROOT / "test-artifacts" / "ui"
ERROR_TEXTS = ("Page not found", "An unexpected error", "Unexpected GraphQL error",
               "Asset not found", "Something went wrong")  # fmt: skip


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise RuntimeError("Chromium is not installed: apt-get install -y chromium (.ci/run does)")
    return found


@pytest.fixture(scope="module")
def dagster_ui(demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`dagster dev` (webserver and daemon) on the demo's instance, as the README says to open
    it after the demo; its whole process group is stopped afterwards."""
    port = free_port()
    log = tmp_path_factory.mktemp("ui") / "dagster_dev.log"  # a file: a full pipe stalls it
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LAKEHOUSE_"))}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster")), "dev", "-f", "definitions.py",
             "-h", "127.0.0.1", "-p", str(port)],
            cwd=ROOT, env={**env, "DAGSTER_HOME": str(demo_run.home)},
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for_port(port, timeout=180)
        yield f"http://127.0.0.1:{port}"
        served = log.read_text()  # before Ctrl-C, which interrupts whatever is starting
        assert "Traceback" not in served, served[-3000:]
    finally:
        # Ctrl-C; 15 s later the group is killed. What this fixture serves is the pages: a
        # clean stop of the whole platform is test_live's (Ctrl-C while a run worker starts can
        # keep `dagster dev` waiting on it for a minute).
        stop_process_group(proc, signal.SIGINT, timeout=15)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
        launched = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        yield launched
        launched.close()


class UserSession:
    """One browser tab: every page it opens must render without an error page or a script
    error, and is kept as a screenshot."""

    def __init__(self, page: Page, base: str) -> None:
        self.page, self.base, self.script_errors = page, base, []
        page.on("pageerror", lambda error: self.script_errors.append(str(error)))
        page.set_default_timeout(60_000)
        # A fresh instance shows a "Join the Dagster community" dialog once, at a moment of its
        # choosing; Playwright dismisses it whenever it blocks an action.
        page.add_locator_handler(
            page.get_by_text("Join the Dagster community"),
            lambda: page.get_by_role("button", name="Skip").click(),
        )
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def open(self, path: str, *expected: str, shot: str) -> str:
        self.page.goto(self.base + path)
        for text in expected:
            self.page.get_by_text(text, exact=True).first.wait_for()
        self.page.wait_for_timeout(500)  # let lazy panels (metadata, plots) settle
        self.page.screenshot(path=SCREENSHOTS / f"{shot}.png", full_page=True)
        body = self.page.inner_text("body")
        shown = [t for t in ERROR_TEXTS if t in body]
        assert not shown, f"{path}: {shown}"
        assert not self.script_errors, f"{path}: {self.script_errors}"
        return body


def _latest_run(home: Path, asset: dg.AssetKey, after: float) -> dg.DagsterRun | None:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for record in instance.get_run_records(limit=20):
            run = record.dagster_run
            if record.create_timestamp.timestamp() > after and asset in (run.asset_selection or ()):
                return run
    return None


@pytest.mark.timeout(420)
def test_the_ui_shows_the_demo_and_runs_a_gold_asset(
    demo_run: DemoRun, dagster_ui: str, browser: Browser
) -> None:
    user = UserSession(browser.new_page(viewport={"width": 1600, "height": 1000}), dagster_ui)

    # The lineage graph: every group of the graph is drawn.
    body = user.open("/asset-groups", "silver", "gold", shot="01-lineage")
    for group in ("landing", "bronze", "silver", "gold", "lakebase", "reports", "demo"):
        assert group in body
    body = user.open("/assets/silver/sensor_readings?view=lineage", "schematized",
                     shot="02-silver-lineage")  # fmt: skip
    for node in ("raw", "regional", "sensor_readings", "anomalies", "fleet_health"):
        assert node in body.split(), node

    # One asset with its latest materialization, metadata, columns and row preview.
    body = user.open("/assets/gold/fleet_health", "Latest materialization", shot="03-asset")
    for text in ("lakehouse.dev.gold_fleet_health", "last_reading_at", "data-platform",
                 "when this sensor's latest reading was taken"):  # fmt: skip
        assert text in body, text
    body = user.open("/assets/gold/fleet_health?view=events", "warehouse_file",
                     shot="04-asset-events")  # fmt: skip
    for text in ("Materialized in run", "preview", "warehouse_file", "dagster/column_schema"):
        assert text in body, text

    # Silver's checks: all twelve evaluated, none failed on a healthy demo, actions shown.
    body = user.open("/assets/silver/sensor_readings?view=checks", "fail_sensor_id_present",
                     shot="05-silver-checks")  # fmt: skip
    assert re.search(r"Checks \(12\)", body)
    statuses = re.findall(r"\n(Succeeded|Failed|Errored|Not evaluated)\n", body)
    assert statuses[:12] == ["Succeeded"] * 12, statuses
    user.page.get_by_text("drop_temperature_in_range", exact=True).first.click()
    user.page.get_by_text("expect_or_drop: temperature within physical limits").wait_for()
    user.page.get_by_text("rows_dropped", exact=True).first.wait_for()
    user.page.screenshot(path=SCREENSHOTS / "05b-drop-check.png")
    user.page.get_by_text("fail_sensor_id_present", exact=True).first.click()
    user.page.get_by_text("blocking", exact=True).first.wait_for()  # expect_or_fail blocks

    # The automation page lists the sensors and schedules, with history for the landing ones.
    body = user.open("/automation", "lakehouse_automation_sensor", shot="06-automation")
    for name in ("landing_raw_sensor", "lakehouse_hourly_schedule", "edge_fleet_sensor"):
        assert name in body
    body = user.open("/locations/definitions.py/sensors/landing_raw_sensor", "Latest tick",
                     shot="07-landing-sensor")  # fmt: skip
    assert "Sensor has never run" not in body  # the demo's ticks are in the instance

    # The fleet cost projection is a chart, drawn in the UI, with money as money.
    body = user.open("/assets/reports/fleet_cost_projection?view=events", "projection",
                     shot="08-cost-projection")  # fmt: skip
    user.page.get_by_text("[Show Markdown]").first.click()  # the UI opens long Markdown
    chart = user.page.get_by_alt_text("monthly cost by fleet size").first
    chart.wait_for()
    user.page.screenshot(path=SCREENSHOTS / "08b-cost-chart.png")
    assert chart.evaluate("image => image.complete && image.naturalWidth") > 300
    assert re.search(r"\$[\d,]+\.\d\d", body) and "100,000" in body

    # Materialize one gold asset from the UI and wait for the run to succeed there.
    asset = dg.AssetKey(["gold", "fleet_health"])
    clicked = time.time()
    user.open("/assets/gold/fleet_health", "Latest materialization", shot="09-before-run")
    user.page.locator("button").filter(has_text=re.compile(r"^Materialize$")).first.click()
    user.page.get_by_text("Launched run").first.wait_for()
    deadline = time.monotonic() + 240
    run = None
    while time.monotonic() < deadline:
        run = _latest_run(demo_run.home, asset, clicked)
        if run is not None and run.is_finished:
            break
        time.sleep(2)
    assert run is not None and run.is_finished, run
    body = user.open(f"/runs/{run.run_id}", "Success", shot="10-run")
    assert run.status == dg.DagsterRunStatus.SUCCESS, body[-2000:]
    with dg.DagsterInstance.from_config(str(demo_run.home)) as instance:
        latest = instance.get_latest_materialization_event(asset)
        assert latest is not None and latest.run_id == run.run_id
