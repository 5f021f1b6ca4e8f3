"""Sensors: each new or changed landing object leads to exactly one bronze request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pytest

from orchestration.bronze.discovery import LandingCursor, LandingDiscovery
from orchestration.bronze.sensors import build_landing_sensor, partition_key_for
from orchestration.resources import LandingZone
from tests.conftest import bucket
from tests.lakehouse import DEV, NOW, hour_key, put_object, reading


def _discovery(s3: Any, prefix: str, **kw: Any) -> LandingDiscovery:
    landing = LandingZone(bucket_prefix=prefix)
    return LandingDiscovery(
        client=s3, buckets=[bucket(prefix, "raw")],
        partition_key_for=partition_key_for("raw", landing), **kw,
    )  # fmt: skip


def _requested(outcome: Any) -> list[str]:
    return [c.partition_key for c in outcome.changes]


def test_each_changed_hour_is_requested_once(s3: Any, bucket_prefix: str) -> None:
    raw = bucket(bucket_prefix, "raw")
    put_object(s3, raw, NOW, [reading(1, NOW)])
    put_object(s3, raw, NOW - timedelta(hours=1), [reading(2, NOW - timedelta(hours=1))])
    discovery = _discovery(s3, bucket_prefix, full_scan_interval_hours=1e9)
    cursor = LandingCursor(last_full_scan=NOW.timestamp())
    first = discovery.tick(cursor, [], now=NOW)
    assert sorted(_requested(first)) == [hour_key(NOW - timedelta(hours=1)), hour_key(NOW)]
    again = discovery.tick(LandingCursor.from_json(first.cursor.to_json()), [], now=NOW)
    assert again.changes == []
    # A second node uploads into the current hour: only that hour, with a new digest.
    put_object(s3, raw, NOW, [reading(3, NOW)], node="n2")
    third = discovery.tick(again.cursor, [], now=NOW)
    assert _requested(third) == [hour_key(NOW)]
    assert third.changes[0].digest != first.changes[1].digest


def test_key_order_is_not_arrival_order_and_shared_timestamps_are_not_skipped(
    s3: Any, bucket_prefix: str
) -> None:
    """A late key that sorts *before* seen keys, written in the same second, is still found."""
    raw = bucket(bucket_prefix, "raw")
    put_object(s3, raw, NOW, [reading(1, NOW)], node="zz-node")
    discovery = _discovery(s3, bucket_prefix, full_scan_interval_hours=1e9)
    outcome = discovery.tick(LandingCursor(last_full_scan=NOW.timestamp()), [], now=NOW)
    put_object(s3, raw, NOW, [reading(2, NOW)], node="aa-node")  # sorts first, same mtime
    later = discovery.tick(outcome.cursor, [], now=NOW)
    assert _requested(later) == [hour_key(NOW)]


def test_old_hours_are_found_by_reports_or_reconciliation_never_twice(
    s3: Any, bucket_prefix: str
) -> None:
    raw = bucket(bucket_prefix, "raw")
    old = NOW - timedelta(days=3)
    older = NOW - timedelta(days=4)
    put_object(s3, raw, old, [reading(1, old)])  # an offline node, reported when it came back
    put_object(s3, raw, older, [reading(2, older)])  # never reported (Dagster was down)
    discovery = _discovery(s3, bucket_prefix, full_scan_interval_hours=6)
    cursor = LandingCursor(last_full_scan=NOW.timestamp())  # a reconciliation just finished

    reported = discovery.tick(cursor, [(raw, old)], now=NOW)
    assert [(c.partition_key, c.found_by) for c in reported.changes] == [(hour_key(old), "report")]

    not_yet = discovery.tick(reported.cursor, [], now=NOW + timedelta(hours=1))
    assert not_yet.changes == [] and not_yet.reconciliation == "idle"

    reconciled = discovery.tick(not_yet.cursor, [(raw, old)], now=NOW + timedelta(hours=7))
    assert [(c.partition_key, c.found_by) for c in reconciled.changes] == [
        (hour_key(older), "reconciliation")
    ]  # the reported hour is not requested again, though both paths saw it
    assert reconciled.reconciliation == "finished a full pass"


def test_reconciliation_is_bounded_per_tick_and_resumes(s3: Any, bucket_prefix: str) -> None:
    raw = bucket(bucket_prefix, "raw")
    hours = [NOW - timedelta(days=10, hours=h) for h in range(12)]
    for hour in hours:
        for n in range(5):  # 10 keys per hour (object + sidecar)
            put_object(s3, raw, hour, [reading(n, hour)], node=f"n{n}")
    discovery = _discovery(s3, bucket_prefix, max_keys_per_tick=25, lookback_hours=0)
    cursor, requested, ticks = LandingCursor(), [], 0
    while True:
        outcome = discovery.tick(cursor, [], now=NOW)
        ticks += 1
        assert outcome.keys_listed <= 25 + 1000  # at most one page beyond the budget
        requested += _requested(outcome)
        cursor = LandingCursor.from_json(outcome.cursor.to_json())
        if outcome.reconciliation == "finished a full pass":
            break
        assert ticks < 50
    assert ticks > 1
    assert sorted(requested) == sorted(hour_key(h) for h in hours)  # each hour exactly once


class _FailingClient:
    """The real S3 client, failing on the Nth listing: a tick that dies midway."""

    def __init__(self, client: Any, fail_on: int) -> None:
        self.client, self.fail_on, self.calls = client, fail_on, 0

    def list_objects_v2(self, **kw: Any) -> Any:
        self.calls += 1
        if self.calls == self.fail_on:
            raise ConnectionError("S3 went away mid-tick")
        return self.client.list_objects_v2(**kw)


def test_a_tick_failing_midway_loses_and_repeats_nothing(s3: Any, bucket_prefix: str) -> None:
    raw = bucket(bucket_prefix, "raw")
    for h in range(3):
        put_object(s3, raw, NOW - timedelta(hours=h), [reading(h, NOW - timedelta(hours=h))])
    stored = LandingCursor(last_full_scan=NOW.timestamp()).to_json()
    failing = _discovery(s3, bucket_prefix, full_scan_interval_hours=1e9)
    failing.client = _FailingClient(s3, fail_on=3)
    with pytest.raises(ConnectionError):
        failing.tick(LandingCursor.from_json(stored), [], now=NOW)
    # Dagster keeps the stored cursor when a tick raises; the next tick sees everything once.
    healthy = _discovery(s3, bucket_prefix, full_scan_interval_hours=1e9)
    outcome = healthy.tick(LandingCursor.from_json(stored), [], now=NOW)
    assert len(outcome.changes) == 3


def test_racing_ticks_produce_identical_run_keys(
    s3: Any, s3_env: str, bucket_prefix: str, instance: dg.DagsterInstance
) -> None:
    """Two evaluations from the same cursor ask for the same runs; Dagster launches a run key
    once per sensor, so racing or retried ticks cannot double-load."""
    raw = bucket(bucket_prefix, "raw")
    put_object(s3, raw, NOW, [reading(1, NOW)])
    sensor = build_landing_sensor("raw", DEV)
    landing = LandingZone(bucket_prefix=bucket_prefix, endpoint_url=s3_env)

    def evaluate() -> dg.SensorResult:
        context = dg.build_sensor_context(instance=instance, resources={"landing": landing})
        return sensor(context)

    first, second = evaluate(), evaluate()
    keys = [r.run_key for r in first.run_requests or []]
    assert keys and keys == [r.run_key for r in second.run_requests or []]
    assert all(k.startswith(f"bronze/raw:{hour_key(NOW)}:") for k in keys)


def test_sensor_reads_agent_reports_from_the_instance(
    s3: Any, s3_env: str, bucket_prefix: str, instance: dg.DagsterInstance
) -> None:
    raw = bucket(bucket_prefix, "raw")
    old = NOW - timedelta(days=5)
    uri = put_object(s3, raw, old, [reading(1, old)])
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=["landing", "raw"], partition=hour_key(old), metadata={"object_uri": uri}
        )
    )
    sensor = build_landing_sensor("raw", DEV)
    landing = LandingZone(bucket_prefix=bucket_prefix, endpoint_url=s3_env)
    cursor = LandingCursor(last_full_scan=NOW.timestamp()).to_json()
    context = dg.build_sensor_context(
        instance=instance, resources={"landing": landing}, cursor=cursor
    )
    result = sensor(context)
    assert [r.partition_key for r in result.run_requests or []] == [hour_key(old)]
    assert result.run_requests[0].tags["landing/found_by"] == "report"  # type: ignore[index]
    context = dg.build_sensor_context(
        instance=instance, resources={"landing": landing}, cursor=result.cursor
    )
    again = sensor(context)
    assert not again.run_requests and "no new or changed objects" in str(again.skip_reason)


def test_future_hours_are_held_back_named_and_picked_up_when_they_begin(
    s3: Any, s3_env: str, bucket_prefix: str, instance: dg.DagsterInstance
) -> None:
    """A node whose clock runs two days ahead must not stop the sensor for everything else."""
    hourly_partitions = DEV.hourly

    raw = bucket(bucket_prefix, "raw")
    ahead = NOW + timedelta(days=2)
    old = NOW - timedelta(days=1)
    for hour, node in ((ahead, "fast-clock"), (old, "n1")):
        uri = put_object(s3, raw, hour, [reading(1, hour)], node=node)
        instance.report_runless_asset_event(  # Dagster's endpoint accepts any partition
            dg.AssetMaterialization(
                asset_key=["landing", "raw"], partition=hour_key(hour), metadata={"object_uri": uri}
            )
        )
    sensor = build_landing_sensor("raw", DEV)
    landing = LandingZone(bucket_prefix=bucket_prefix, endpoint_url=s3_env)
    cursor = LandingCursor(last_full_scan=NOW.timestamp()).to_json()
    context = dg.build_sensor_context(
        instance=instance, resources={"landing": landing}, cursor=cursor
    )
    result = sensor(context)
    requested = [r.partition_key for r in result.run_requests or []]
    assert requested == [hour_key(old)]  # the rest proceeds ...
    assert all(hourly_partitions.has_partition_key(k) for k in requested)  # ... validly
    stored = LandingCursor.from_json(result.cursor)
    assert stored.held == {f"{raw}|{ahead.isoformat()}": ["fast-clock"]}
    # ... and once its hour begins, the held hour is requested exactly once.
    discovery = _discovery(s3, bucket_prefix, full_scan_interval_hours=1e9)
    still = discovery.tick(stored, [], now=NOW + timedelta(days=1))
    assert still.changes == [] and len(still.held) == 1
    assert "fast-clock" in still.held[0].describe() and hour_key(ahead) in still.held[0].describe()
    begun = discovery.tick(still.cursor, [], now=ahead + timedelta(minutes=5))
    assert [(c.partition_key, c.found_by) for c in begun.changes] == [(hour_key(ahead), "listing")]
    later = discovery.tick(begun.cursor, [], now=ahead + timedelta(hours=30))
    assert later.changes == [] and later.cursor.held == {}


def test_a_held_hour_older_than_the_lookback_is_still_requested(
    s3: Any, bucket_prefix: str
) -> None:
    raw = bucket(bucket_prefix, "raw")
    ahead = NOW + timedelta(days=2)
    put_object(s3, raw, ahead, [reading(1, ahead)], node="fast-clock")
    discovery = _discovery(s3, bucket_prefix, full_scan_interval_hours=1e9)
    cursor = LandingCursor(last_full_scan=NOW.timestamp())
    first = discovery.tick(cursor, [(raw, ahead)], now=NOW)
    assert first.changes == [] and first.held
    # The platform was down until long after that hour: it is no longer in the lookback.
    late = discovery.tick(first.cursor, [], now=ahead + timedelta(days=3))
    assert [(c.partition_key, c.found_by) for c in late.changes] == [(hour_key(ahead), "held back")]


def _put_half(s3: Any, name: str, hour: Any, which: str, node: str) -> str:
    from edge_agent.contract import data_object_key, sidecar_key

    key = data_object_key(hour, node, "b0000001-000000000001-000000000010")
    if which == "sidecar":
        key = sidecar_key(key)
    s3.put_object(Bucket=name, Key=key, Body=b"{}" if which == "sidecar" else b"PAR1")
    return f"s3://{name}/{key}"


def test_incomplete_uploads_are_quarantined_by_name_after_grace_and_load_when_complete(
    s3: Any, s3_env: str, bucket_prefix: str, tmp_path: Any, instance: dg.DagsterInstance
) -> None:
    from orchestration.bronze.assets import QUARANTINE_CHECK, build_bronze_asset
    from tests.lakehouse import materialize, resources, warehouse_rows

    raw = bucket(bucket_prefix, "raw")
    hour = NOW - timedelta(hours=1)
    put_object(s3, raw, hour, [reading(1, hour)], node="whole")
    data_only = _put_half(s3, raw, hour, "data", "no-sidecar")
    sidecar_only = _put_half(s3, raw, hour, "sidecar", "no-data")
    discovery = _discovery(s3, bucket_prefix, full_scan_interval_hours=1e9)
    cursor = LandingCursor(last_full_scan=NOW.timestamp())
    fresh = discovery.tick(cursor, [], now=datetime.now(UTC))  # within the grace period
    assert _requested(fresh) == [hour_key(hour)] and fresh.incomplete == 0
    stale = discovery.tick(fresh.cursor, [], now=datetime.now(UTC) + timedelta(hours=1))
    assert _requested(stale) == [hour_key(hour)] and stale.incomplete == 2  # the gap is news
    again = discovery.tick(stale.cursor, [], now=datetime.now(UTC) + timedelta(hours=1))
    assert again.changes == []  # ... once

    # Bronze (grace 0 here: the halves are old enough) loads the whole upload and names the rest.
    res = resources(bucket_prefix, s3_env, tmp_path / "w.duckdb")
    no_grace = {"ops": {"bronze__raw": {"config": {"incomplete_grace_minutes": 0}}}}
    result = materialize(build_bronze_asset("raw", DEV), hour_key(hour), res, instance, no_grace)
    check = next(c for c in result.get_asset_check_evaluations())
    assert check.check_name == QUARANTINE_CHECK and not check.passed
    listing = str(check.metadata["objects"].value)
    assert data_only in listing and sidecar_only in listing and "no sidecar" in listing
    quarantined = warehouse_rows(tmp_path / "w.duckdb", "SELECT object_uri FROM _bronze_quarantine")
    assert sorted(u for (u,) in quarantined) == sorted([data_only, sidecar_only])

    # The node redoes its upload: both halves complete; the digest changes and it loads.
    s3.delete_object(Bucket=raw, Key=sidecar_only.split("/", 3)[3])
    put_object(s3, raw, hour, [reading(2, hour)], node="no-sidecar")
    done = discovery.tick(again.cursor, [], now=datetime.now(UTC) + timedelta(hours=1))
    assert _requested(done) == [hour_key(hour)] and done.incomplete == 0
    result = materialize(build_bronze_asset("raw", DEV), hour_key(hour), res, instance, no_grace)
    assert next(c for c in result.get_asset_check_evaluations()).passed
    assert warehouse_rows(tmp_path / "w.duckdb", "SELECT count(*) FROM bronze_raw") == [(2,)]


def test_hours_before_the_first_partition_are_named_not_requested(
    s3: Any, s3_env: str, bucket_prefix: str, instance: dg.DagsterInstance,
    capfd: pytest.CaptureFixture,
) -> None:  # fmt: skip
    hourly_partitions = DEV.hourly

    raw = bucket(bucket_prefix, "raw")
    ancient = hourly_partitions.start - timedelta(days=3)  # a backlog older than the partitions
    put_object(s3, raw, ancient, [reading(1, ancient)])
    put_object(s3, raw, NOW, [reading(2, NOW)], node="n2")
    sensor = build_landing_sensor("raw", DEV)
    landing = LandingZone(bucket_prefix=bucket_prefix, endpoint_url=s3_env)
    context = dg.build_sensor_context(instance=instance, resources={"landing": landing})
    result = sensor(context)  # a first tick reconciles the whole bucket
    assert [r.partition_key for r in result.run_requests or []] == [hour_key(NOW)]
    logged = capfd.readouterr().err
    assert f"raw hour {hour_key(ancient)} is before the first partition" in logged
