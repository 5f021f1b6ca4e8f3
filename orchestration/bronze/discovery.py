"""Exactly-once discovery of landing objects: which bronze partitions must be (re)loaded.

A bronze partition is replaced as a whole from every complete object of its hour, so the unit
of discovery is a partition and its *digest* (keys and ETags of its complete objects). Three
sources feed the same comparison, so they can never double-trigger each other:

- recent hours: the hour prefixes inside a lookback window are listed every tick;
- agents' reports: `landing/<scenario>` materializations name old hours that late nodes upload;
- reconciliation: every few hours the whole bucket is listed, a bounded number of keys per tick,
  resuming after the last complete hour, so an unreported old object is found at the latest then.

A partition is requested when its digest differs from the one last requested, with the digest
in the run key: racing or repeated ticks produce the same key, and Dagster launches it once.

Hours that have not begun yet (a node whose clock runs ahead) are not partitions yet: they are
held back in the cursor, named in the tick's log, and requested once their hour begins, while
every other hour proceeds. Halves of uploads (data without sidecar or the reverse) older than a
grace period count in their hour's digest, so bronze loads the hour and quarantines them by
name; when the upload completes the digest changes again and the hour is reloaded.

Every node can write any key and post any report, so no single record can stop a tick: a key
outside the layout (an impossible date, a stray file) or a malformed report is skipped, named
(`SkippedRecord`) and counted, and the tick goes on and saves its cursor. Reconciliation lists
only the data layout (`year=`), and every key it lists counts against the tick's budget.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from edge_agent.contract import DATA_KEY_PREFIX, node_of_key
from orchestration.landing.objects import (
    HourListing,
    ListedKey,
    hour_key,
    hour_listing,
    hour_of_key,
    hour_prefix,
    list_hour,
)

CURSOR_VERSION = 1


@dataclass
class LandingCursor:
    """The sensor's cursor, stored as JSON."""

    report_storage_id: int = 0  # last landing materialization event already looked at
    digests: dict[str, str] = field(default_factory=dict)  # partition key -> digest requested
    scan_bucket: int = -1  # bucket index of the reconciliation in progress; -1 when idle
    scan_after: str = ""  # reconciliation resumes after this key (end of a complete hour)
    last_full_scan: float = 0.0  # when the last reconciliation finished (epoch seconds)
    held: dict[str, list[str]] = field(default_factory=dict)  # "bucket|hour" ahead -> nodes

    def to_json(self) -> str:
        return json.dumps({"version": CURSOR_VERSION, **asdict(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> LandingCursor:
        if not text:
            return cls()
        data = json.loads(text)
        if data.pop("version", None) != CURSOR_VERSION:
            return cls()  # an unknown cursor shape: start over (bronze loads are idempotent)
        return cls(**data)


@dataclass(frozen=True)
class PartitionChange:
    partition_key: str
    bucket: str
    hour: datetime
    digest: str
    objects: int
    found_by: str


@dataclass(frozen=True)
class HeldHour:
    """Objects in an hour that has not begun: held back until it does."""

    bucket: str
    hour: datetime
    nodes: tuple[str, ...]

    def describe(self) -> str:
        return (
            f"{self.bucket} hour {hour_key(self.hour)} is in the future (node clock ahead?): "
            f"held back until it begins; node(s) {', '.join(self.nodes) or 'unknown'}"
        )


@dataclass(frozen=True)
class SkippedRecord:
    """A key or upload report a tick could not use: named in the tick's log and counted."""

    kind: str  # "key" | "report"
    name: str
    reason: str

    def describe(self) -> str:
        return f"skipped {self.kind} {self.name!r}: {self.reason}"


@dataclass
class TickOutcome:
    changes: list[PartitionChange]
    cursor: LandingCursor
    hours_listed: int = 0
    keys_listed: int = 0
    reports_seen: int = 0
    reconciliation: str = "idle"
    held: list[HeldHour] = field(default_factory=list)
    incomplete: int = 0  # incomplete uploads past the grace period in the requested hours
    skipped: list[SkippedRecord] = field(default_factory=list)

    def skipped_count(self, kind: str) -> int:
        return sum(1 for s in self.skipped if s.kind == kind)

    def summary(self) -> str:
        return (
            f"{self.hours_listed} hour prefix(es) listed, {self.keys_listed} keys, "
            f"{self.reports_seen} new upload report(s), reconciliation {self.reconciliation}, "
            f"{len(self.held)} future hour(s) held back, "
            f"{self.incomplete} incomplete upload(s) past the grace period, "
            f"{self.skipped_count('report')} report(s) and {self.skipped_count('key')} key(s) "
            "skipped"
        )


@dataclass
class LandingDiscovery:
    """One bucket family (a scenario; regional: one bucket per region)."""

    client: Any
    buckets: list[str]
    partition_key_for: Any  # (bucket, hour) -> partition key
    lookback_hours: int = 3
    full_scan_interval_hours: float = 6.0
    max_keys_per_tick: int = 20_000
    retention_days: int = 400
    incomplete_grace: timedelta = timedelta(minutes=30)
    # Hours further ahead are skipped by name, not held: the cursor stays bounded.
    hold_horizon: timedelta = timedelta(days=7)

    def recent_hours(self, now: datetime) -> list[datetime]:
        top = now.replace(minute=0, second=0, microsecond=0)
        # One hour ahead too: node clocks run fast, and their rows land in future hours.
        return [top - timedelta(hours=h) for h in range(-1, self.lookback_hours + 1)]

    def tick(
        self,
        cursor: LandingCursor,
        reported: list[tuple[str, datetime]],
        now: datetime | None = None,
        skipped: list[SkippedRecord] | None = None,
    ) -> TickOutcome:
        """`skipped`: records the caller already set aside (malformed reports), carried into
        the outcome so the tick names them with its own."""
        now = now or datetime.now(UTC)
        outcome = TickOutcome([], cursor, skipped=list(skipped or []))
        stale_before = now - self.incomplete_grace
        candidates: dict[tuple[str, datetime], tuple[HourListing, str]] = {}

        def listed(bucket: str, hour: datetime, found_by: str) -> None:
            if (bucket, hour) not in candidates:
                candidates[(bucket, hour)] = (
                    list_hour(self.client, bucket, hour, stale_before),
                    found_by,
                )
                outcome.hours_listed += 1

        for bucket in self.buckets:
            for hour in self.recent_hours(now):
                listed(bucket, hour, "listing")
        outcome.reports_seen = len(reported)
        for bucket, hour in reported:
            if bucket in self.buckets:
                listed(bucket, hour, "report")
            else:
                outcome.skipped.append(
                    SkippedRecord(
                        "report", f"s3://{bucket} {hour_key(hour)}", "not a bucket of this source"
                    )
                )
        current_hour = now.replace(minute=0, second=0, microsecond=0)
        for held in list(cursor.held):
            bucket, hour = _held_hour(held)
            if hour <= current_hour:  # its hour has begun: a partition now
                del cursor.held[held]
                if bucket in self.buckets:
                    listed(bucket, hour, "held back")
        for key, listing in self._reconcile(cursor, now.timestamp(), outcome, stale_before).items():
            candidates.setdefault(key, (listing, "reconciliation"))

        for (bucket, hour), (listing, found_by) in sorted(candidates.items()):
            if not listing.objects and not listing.incomplete:
                continue
            if hour > current_hour + self.hold_horizon:  # no clock runs this fast: not held
                outcome.skipped.append(SkippedRecord(
                    "key", f"s3://{bucket}/{hour_prefix(hour)}",
                    f"an hour more than {self.hold_horizon.days} days ahead: not held back",
                ))  # fmt: skip
                continue
            if hour > current_hour:
                nodes = sorted({node_of_key(o.key) or "unknown" for o in listing.objects})
                cursor.held[_held_key(bucket, hour)] = nodes[:20]
                continue
            partition_key = self.partition_key_for(bucket, hour)
            current = listing.digest()
            if cursor.digests.get(partition_key) != current:
                cursor.digests[partition_key] = current
                outcome.incomplete += len(listing.incomplete)
                outcome.changes.append(
                    PartitionChange(
                        partition_key, bucket, hour, current, len(listing.objects), found_by
                    )
                )
        self._prune(cursor, now)
        outcome.held = [  # every hour still held, named on every tick until it begins
            HeldHour(*_held_hour(held), tuple(nodes)) for held, nodes in sorted(cursor.held.items())
        ]
        return outcome

    def _reconcile(
        self, cursor: LandingCursor, now: float, outcome: TickOutcome, stale_before: datetime
    ) -> dict[tuple[str, datetime], HourListing]:
        """List part of the whole family, ending on an hour boundary; resume next tick."""
        if cursor.scan_bucket < 0:
            if now - cursor.last_full_scan < self.full_scan_interval_hours * 3600:
                return {}
            cursor.scan_bucket, cursor.scan_after = 0, ""
        found: dict[tuple[str, datetime], HourListing] = {}
        budget = self.max_keys_per_tick
        while cursor.scan_bucket < len(self.buckets) and budget > 0:
            bucket = self.buckets[cursor.scan_bucket]
            by_hour: dict[datetime, list[ListedKey]] = defaultdict(list)
            finished, last_key, listed = self._scan_bucket(
                bucket, cursor.scan_after, budget, by_hour, outcome.skipped
            )
            budget -= listed
            outcome.keys_listed += listed
            for hour in sorted(by_hour):
                found[(bucket, hour)] = hour_listing(by_hour[hour], bucket, stale_before)
            if finished:
                cursor.scan_bucket, cursor.scan_after = cursor.scan_bucket + 1, ""
            else:
                cursor.scan_after = last_key
        if cursor.scan_bucket >= len(self.buckets):
            cursor.scan_bucket, cursor.scan_after, cursor.last_full_scan = -1, "", now
            outcome.reconciliation = "finished a full pass"
        else:
            outcome.reconciliation = (
                f"in progress ({self.buckets[cursor.scan_bucket]} after {cursor.scan_after!r})"
            )
        return found

    def _scan_bucket(
        self,
        bucket: str,
        start_after: str,
        budget: int,
        by_hour: dict[datetime, list[ListedKey]],
        skipped: list[SkippedRecord],
    ) -> tuple[bool, str, int]:
        """Pages of the data layout in key order until the budget is spent, leaving in
        `by_hour` only whole hours (an hour's keys are contiguous, so an hour is whole once a
        key past it is listed). Every key listed counts; a key outside the layout is named and
        skipped. Returns (finished, the key to resume after, keys listed)."""
        params: dict[str, Any] = {
            "Bucket": bucket,
            "Prefix": DATA_KEY_PREFIX,  # not `_rejected/` or other files beside the data
            "MaxKeys": max(1, min(1000, budget)),
        }
        if start_after:
            params["StartAfter"] = start_after
        listed, last_key = 0, start_after
        resume_before: dict[datetime, str] = {}  # hour -> the key listed just before it
        while True:
            page = self.client.list_objects_v2(**params)
            for obj in page.get("Contents", []):
                hour = hour_of_key(obj["Key"])
                listed += 1
                if hour is None:
                    skipped.append(
                        SkippedRecord("key", f"s3://{bucket}/{obj['Key']}", "not an event-hour key")
                    )
                else:
                    resume_before.setdefault(hour, last_key)
                    by_hour[hour].append(ListedKey.from_listing(obj))
                last_key = obj["Key"]
            if not page.get("IsTruncated"):
                return True, last_key, listed
            if listed >= budget:
                open_hour = hour_of_key(last_key)  # the hour the listing stopped inside, if any
                if open_hour is None:
                    return False, last_key, listed
                if len(by_hour) > 1:  # it may go on in the next page: listed again next tick
                    del by_hour[open_hour]
                    return False, resume_before[open_hour], listed
            params["ContinuationToken"] = page["NextContinuationToken"]

    def _prune(self, cursor: LandingCursor, now: datetime) -> None:
        oldest = hour_key(now - timedelta(days=self.retention_days))
        for key in [k for k in cursor.digests if k.split("|")[0] < oldest]:
            del cursor.digests[key]


def _held_key(bucket: str, hour: datetime) -> str:
    """A held hour in the cursor: `bucket|ISO hour`."""
    return f"{bucket}|{hour.isoformat()}"


def _held_hour(key: str) -> tuple[str, datetime]:
    bucket, hour = key.split("|", 1)
    return bucket, datetime.fromisoformat(hour)
