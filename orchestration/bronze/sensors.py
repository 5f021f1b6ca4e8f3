"""One S3 sensor per landing bucket family; each requests bronze partitions to (re)load."""

from datetime import datetime, timedelta

import dagster as dg

from edge_agent.contract import SCENARIOS, partition_hour
from orchestration.bronze.discovery import LandingCursor, LandingDiscovery, SkippedRecord
from orchestration.environment import Environment
from orchestration.landing.objects import hour_key
from orchestration.output import markdown_table
from orchestration.resources import LandingUnreachableError, LandingZone
from orchestration.settings import EnvironmentSettings

REPORTS_PER_TICK = 500
# Each distinct reported hour costs one listing: a tick takes reports until it has this many
# hours to list (the rest wait for the next tick), so a flood of reports cannot stretch a tick.
REPORTED_HOURS_PER_TICK = 100
SKIPPED_LOG_LINES = 20  # skipped records named one per line; the rest counted


def partition_key_for(scenario: str, landing: LandingZone):
    region_of = {landing.bucket("regional", r): r for r in landing.regional_regions}

    def key(bucket: str, hour: datetime) -> str:
        if scenario != "regional":
            return hour_key(hour)
        return str(dg.MultiPartitionKey({"hour": hour_key(hour), "region": region_of[bucket]}))

    return key


def reported_hours(
    instance: dg.DagsterInstance, scenario: str, cursor: LandingCursor
) -> tuple[list[tuple[str, datetime]], list[SkippedRecord]]:
    """(bucket, hour) of uploads agents reported since the cursor, and the reports that could
    not be used (anyone who reaches the webserver can post one); advances the cursor past both.
    """
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(["landing", scenario]),
            after_storage_id=cursor.report_storage_id or None,
        ),
        limit=REPORTS_PER_TICK,
        ascending=True,
    ).records
    out: set[tuple[str, datetime]] = set()
    skipped: list[SkippedRecord] = []
    for record in records:
        if len(out) >= REPORTED_HOURS_PER_TICK:
            break  # the cursor stays here: the next tick goes on from this report
        cursor.report_storage_id = max(cursor.report_storage_id, record.storage_id)
        found = _reported_hour(record)
        if isinstance(found, SkippedRecord):
            skipped.append(found)
        else:
            out.add(found)
    return sorted(out), skipped


def _reported_hour(record: dg.EventLogRecord) -> tuple[str, datetime] | SkippedRecord:
    name = f"event {record.storage_id}"
    mat = record.asset_materialization
    uri = mat.metadata.get("object_uri") if mat else None
    if not record.partition_key or uri is None:
        return SkippedRecord("report", name, "no partition or no object_uri")
    try:
        hour = partition_hour(record.partition_key)
    except (TypeError, ValueError):
        return SkippedRecord("report", name, f"partition {record.partition_key[:64]!r} is no hour")
    text = str(uri.value)
    if not text.startswith("s3://"):
        return SkippedRecord("report", name, f"object_uri {text[:64]!r} is not s3://")
    return text.removeprefix("s3://").split("/", 1)[0], hour


def skipped_records_event(
    scenario: str, skipped: list[SkippedRecord]
) -> dg.AssetObservation | None:
    """The tick's skipped records as an observation of `landing/<scenario>`: counts and the
    first few by name, where the UI shows the landing asset's events."""
    if not skipped:
        return None
    rows = markdown_table(
        ["kind", "name", "reason"],
        [[s.kind, s.name[:120], s.reason] for s in skipped[:SKIPPED_LOG_LINES]],
    )
    return dg.AssetObservation(
        asset_key=dg.AssetKey(["landing", scenario]),
        description=f"landing sensor skipped {len(skipped)} record(s) it could not use",
        metadata={
            "skipped_reports": sum(1 for s in skipped if s.kind == "report"),
            "skipped_keys": sum(1 for s in skipped if s.kind == "key"),
            "skipped": dg.MetadataValue.md(rows),
        },
    )


def discovery_for(
    scenario: str, landing: LandingZone, settings: EnvironmentSettings
) -> LandingDiscovery:
    buckets = landing.buckets()[scenario]
    return LandingDiscovery(
        client=landing.client(),
        buckets=buckets,
        partition_key_for=partition_key_for(scenario, landing),
        lookback_hours=settings.sensor_lookback_hours,
        full_scan_interval_hours=settings.full_scan_interval_hours,
        max_keys_per_tick=settings.max_keys_per_tick,
        incomplete_grace=timedelta(minutes=settings.incomplete_grace_minutes),
    )


def build_landing_sensor(scenario: str, env: Environment) -> dg.SensorDefinition:
    bronze_key = dg.AssetKey(["bronze", scenario])
    partitions = env.regional if scenario == "regional" else env.hourly
    first = env.hourly.start.strftime("%Y-%m-%d %H:00")

    @dg.sensor(
        name=f"landing_{scenario}_sensor",
        asset_selection=[bronze_key],
        minimum_interval_seconds=env.settings.landing_sensor_interval_seconds,
        default_status=env.settings.default_status(),  # needs S3 (lakehouse-live)
        description=(
            f"Finds new or rewritten objects in the {scenario} landing bucket(s) and requests "
            f"each changed hour of bronze/{scenario} once. Cursor: JSON with the last upload "
            "report seen, the digest requested per partition, and the reconciliation position. "
            "Needs the landing buckets reachable with credentials; stopped by default because a "
            "fresh machine has no S3 endpoint (a tick without one skips and says so)."
        ),
    )
    def landing_sensor(
        context: dg.SensorEvaluationContext, landing: LandingZone
    ) -> dg.SensorResult:
        cursor = LandingCursor.from_json(context.cursor)
        reported, skipped = reported_hours(context.instance, scenario, cursor)
        try:
            with landing.reachable():
                discovery = discovery_for(scenario, landing, env.settings)
                outcome = discovery.tick(cursor, reported, skipped=skipped)
        except LandingUnreachableError as exc:  # the tick says what is missing; cursor kept
            return dg.SensorResult(skip_reason=dg.SkipReason(str(exc)), cursor=context.cursor)
        for change in outcome.changes:
            if not partitions.has_partition_key(change.partition_key):
                context.log.warning(
                    f"{scenario} hour {change.partition_key} is before the first partition "
                    f"({first}): not loaded; move the environment's partitions_start (or, "
                    "locally, first_partition in $DAGSTER_HOME/lakehouse_installation.json) "
                    "back to load it"
                )
        requests = [
            dg.RunRequest(
                run_key=f"bronze/{scenario}:{change.partition_key}:{change.digest}",
                partition_key=change.partition_key,
                asset_selection=[bronze_key],
                tags={
                    "landing/digest": change.digest,
                    "landing/found_by": change.found_by,
                    "landing/objects": str(change.objects),
                },
            )
            for change in outcome.changes
            if partitions.has_partition_key(change.partition_key)
        ]
        for held in outcome.held[:SKIPPED_LOG_LINES]:
            context.log.warning(held.describe())
        if len(outcome.held) > SKIPPED_LOG_LINES:
            context.log.warning(f"... and {len(outcome.held) - SKIPPED_LOG_LINES} more held back")
        for record in outcome.skipped[:SKIPPED_LOG_LINES]:
            context.log.warning(record.describe())
        if len(outcome.skipped) > SKIPPED_LOG_LINES:
            context.log.warning(f"... and {len(outcome.skipped) - SKIPPED_LOG_LINES} more skipped")
        context.log.info(outcome.summary())
        observation = skipped_records_event(scenario, outcome.skipped)
        events = [observation] if observation is not None else []
        if not requests:
            return dg.SensorResult(
                skip_reason=dg.SkipReason(f"no new or changed objects: {outcome.summary()}"),
                cursor=outcome.cursor.to_json(),
                asset_events=events,
            )
        return dg.SensorResult(
            run_requests=requests, cursor=outcome.cursor.to_json(), asset_events=events
        )

    return landing_sensor


def landing_sensors(env: Environment) -> list[dg.SensorDefinition]:
    return [build_landing_sensor(scenario, env) for scenario in SCENARIOS]
