"""Landing discovery survives any single bad record: every node can write any key to a landing
bucket and anyone who reaches the webserver can post an upload report (issue 17, items 1-3)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import dagster as dg
import pytest

from orchestration.bronze.discovery import LandingCursor
from orchestration.bronze.sensors import REPORTED_HOURS_PER_TICK, build_landing_sensor
from orchestration.resources import LandingZone
from tests.conftest import bucket
from tests.lakehouse import DEV, NOW, hour_key, put_object, reading
from tests.test_discovery import _discovery


def _report(instance: dg.DagsterInstance, partition: str | None, uri: str | None) -> None:
    """What `POST /report_asset_materialization/landing/raw` records: no validation at all."""
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=["landing", "raw"],
            partition=partition,
            metadata={"object_uri": uri} if uri is not None else {},
        )
    )


def _evaluate(instance: dg.DagsterInstance, landing: LandingZone, cursor: str | None) -> Any:
    sensor = build_landing_sensor("raw", DEV)
    context = dg.build_sensor_context(
        instance=instance, resources={"landing": landing}, cursor=cursor
    )
    return sensor(context)


def test_malformed_reports_are_skipped_named_and_counted_and_the_good_one_loads(
    s3: Any, s3_env: str, bucket_prefix: str, instance: dg.DagsterInstance,
    capfd: pytest.CaptureFixture,
) -> None:  # fmt: skip
    raw = bucket(bucket_prefix, "raw")
    old = NOW - timedelta(days=2)
    good = put_object(s3, raw, old, [reading(1, old)])
    _report(instance, "x", good)  # the reproduction: one POST stopped the sensor
    _report(instance, "2026-13-01-00:00", good)  # no such month
    _report(instance, hour_key(old), None)  # no object_uri
    _report(instance, hour_key(old), "http://elsewhere/x.parquet")
    _report(instance, hour_key(old), f"s3://{bucket(bucket_prefix, 'filtered')}/k")  # not ours
    _report(instance, hour_key(old), good)  # the one real upload
    landing = LandingZone(bucket_prefix=bucket_prefix, endpoint_url=s3_env)
    cursor = LandingCursor(last_full_scan=NOW.timestamp()).to_json()

    result = _evaluate(instance, landing, cursor)

    assert [r.partition_key for r in result.run_requests or []] == [hour_key(old)]
    observed = [e for e in result.asset_events if isinstance(e, dg.AssetObservation)]
    assert len(observed) == 1 and observed[0].asset_key == dg.AssetKey(["landing", "raw"])
    assert observed[0].metadata["skipped_reports"].value == 5
    assert observed[0].metadata["skipped_keys"].value == 0
    table = str(observed[0].metadata["skipped"].value)
    assert "'x' is no hour" in table and "not s3://" in table and "not a bucket" in table
    logged = capfd.readouterr().err
    assert "skipped report" in logged and "is no hour" in logged
    stored = LandingCursor.from_json(result.cursor)
    assert stored.report_storage_id > 0  # the cursor moved past the bad reports
    # The next tick does not trip over them again, and nothing is requested twice.
    again = _evaluate(instance, landing, result.cursor)
    assert not again.run_requests and not again.asset_events
    assert "no new or changed objects" in str(again.skip_reason)


def test_a_flood_of_reports_is_taken_a_bounded_number_of_hours_per_tick(
    s3: Any, s3_env: str, bucket_prefix: str, instance: dg.DagsterInstance
) -> None:
    raw = bucket(bucket_prefix, "raw")
    hours = [NOW - timedelta(days=30, hours=h) for h in range(REPORTED_HOURS_PER_TICK + 20)]
    for hour in hours:  # reports for hours with nothing in them: each costs a listing
        _report(instance, hour_key(hour), f"s3://{raw}/nothing")
    landing = LandingZone(bucket_prefix=bucket_prefix, endpoint_url=s3_env)
    cursor = LandingCursor(last_full_scan=NOW.timestamp()).to_json()
    first = _evaluate(instance, landing, cursor)
    listed_first = int(str(first.skip_reason).split(" hour prefix")[0].split()[-1])
    assert listed_first <= REPORTED_HOURS_PER_TICK + 5  # recent hours are listed too
    second = _evaluate(instance, landing, first.cursor)
    listed_second = int(str(second.skip_reason).split(" hour prefix")[0].split()[-1])
    assert listed_second >= 20  # the rest, on the next tick
    third = _evaluate(instance, landing, second.cursor)
    assert "0 new upload report(s)" in str(third.skip_reason)


def test_a_key_with_an_impossible_date_is_skipped_and_discovery_goes_on(
    s3: Any, s3_env: str, bucket_prefix: str, instance: dg.DagsterInstance
) -> None:
    raw = bucket(bucket_prefix, "raw")
    old = NOW - timedelta(days=3)
    bad = "year=2026/month=13/day=01/hour=00/n1/x.parquet"
    s3.put_object(Bucket=raw, Key=bad, Body=b"PAR1")
    s3.put_object(Bucket=raw, Key="year=2026/month=02/day=30/hour=25/n1/x.json", Body=b"{}")
    put_object(s3, raw, old, [reading(1, old)])  # found only by reconciliation
    landing = LandingZone(bucket_prefix=bucket_prefix, endpoint_url=s3_env)

    result = _evaluate(instance, landing, None)  # a first tick reconciles the whole bucket

    assert [r.partition_key for r in result.run_requests or []] == [hour_key(old)]
    observed = next(e for e in result.asset_events if isinstance(e, dg.AssetObservation))
    assert observed.metadata["skipped_keys"].value == 2
    assert bad in str(observed.metadata["skipped"].value)
    stored = LandingCursor.from_json(result.cursor)
    assert stored.scan_bucket == -1 and stored.last_full_scan > 0  # the pass finished


def test_rejected_rows_and_stray_keys_do_not_eat_the_reconciliation_budget(
    s3: Any, bucket_prefix: str
) -> None:
    """`_rejected/` sorts before `year=` and never expires: reconciliation does not list it,
    and keys outside the layout under `year=` count against the budget like any other."""
    raw = bucket(bucket_prefix, "raw")
    for i in range(60):
        s3.put_object(Bucket=raw, Key=f"_rejected/n1/{i:04d}.parquet", Body=b"x")
    for i in range(30):  # junk between hours: a whole page of it must not stall the pass
        s3.put_object(Bucket=raw, Key=f"year=2025/month=00/day=01/hour=00/{i:04d}", Body=b"x")
    hours = [NOW - timedelta(days=10, hours=h) for h in range(6)]
    for hour in hours:
        for n in range(3):
            put_object(s3, raw, hour, [reading(n, hour)], node=f"n{n}")
    discovery = _discovery(s3, bucket_prefix, max_keys_per_tick=10, lookback_hours=0)
    cursor, requested, ticks, listed, skipped = LandingCursor(), [], 0, 0, 0
    while True:
        outcome = discovery.tick(cursor, [], now=NOW)
        ticks += 1
        listed += outcome.keys_listed
        skipped += outcome.skipped_count("key")
        requested += [c.partition_key for c in outcome.changes]
        cursor = LandingCursor.from_json(outcome.cursor.to_json())
        if outcome.reconciliation == "finished a full pass":
            break
        assert ticks < 60
    assert sorted(requested) == sorted(hour_key(h) for h in hours)  # each hour exactly once
    assert skipped == 30  # each stray key named once per pass
    assert listed < 60 + 30 + 36  # _rejected/ was never listed (it alone is 60 keys)
    assert listed >= 30 + 36


def test_hours_far_ahead_are_skipped_by_name_not_held(s3: Any, bucket_prefix: str) -> None:
    """A node can write under year=2999: such hours are named, never kept in the cursor (which
    would grow with every one of them), while a clock a day ahead is still held back."""
    raw = bucket(bucket_prefix, "raw")
    soon, far = NOW + timedelta(days=1), NOW + timedelta(days=300)
    put_object(s3, raw, soon, [reading(1, soon)], node="fast-clock")
    put_object(s3, raw, far, [reading(2, far)], node="hostile")
    outcome = _discovery(s3, bucket_prefix).tick(LandingCursor(), [], now=NOW)
    assert list(outcome.cursor.held) == [f"{raw}|{soon.isoformat()}"]
    (skipped,) = [s for s in outcome.skipped if "ahead" in s.reason]
    assert f"year={far:%Y}/month={far:%m}/day={far:%d}/hour={far:%H}" in skipped.name
    assert outcome.changes == []
