"""One S3 sensor per landing bucket family; each requests bronze partitions to (re)load."""

from datetime import datetime, timedelta

import dagster as dg

from edge_agent.contract import SCENARIOS, partition_hour
from orchestration.bronze.discovery import LandingCursor, LandingDiscovery
from orchestration.landing.objects import hour_key
from orchestration.partitions import hourly_partitions, regional_partitions
from orchestration.resources import LandingUnreachableError, LandingZone
from orchestration.settings import environment_settings

REPORTS_PER_TICK = 500


def partition_key_for(scenario: str, landing: LandingZone):
    region_of = {landing.bucket("regional", r): r for r in landing.regional_regions}

    def key(bucket: str, hour: datetime) -> str:
        if scenario != "regional":
            return hour_key(hour)
        return str(dg.MultiPartitionKey({"hour": hour_key(hour), "region": region_of[bucket]}))

    return key


def reported_hours(
    instance: dg.DagsterInstance, scenario: str, cursor: LandingCursor
) -> list[tuple[str, datetime]]:
    """(bucket, hour) of uploads agents reported since the cursor; advances the cursor."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(["landing", scenario]),
            after_storage_id=cursor.report_storage_id or None,
        ),
        limit=REPORTS_PER_TICK,
        ascending=True,
    ).records
    out = []
    for record in records:
        cursor.report_storage_id = max(cursor.report_storage_id, record.storage_id)
        mat = record.asset_materialization
        uri = mat.metadata.get("object_uri") if mat else None
        if record.partition_key and uri is not None:
            bucket = str(uri.value).removeprefix("s3://").split("/", 1)[0]
            out.append((bucket, partition_hour(record.partition_key)))
    return out


def discovery_for(scenario: str, landing: LandingZone) -> LandingDiscovery:
    settings = environment_settings()
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


def build_landing_sensor(scenario: str) -> dg.SensorDefinition:
    bronze_key = dg.AssetKey(["bronze", scenario])

    @dg.sensor(
        name=f"landing_{scenario}_sensor",
        asset_selection=[bronze_key],
        minimum_interval_seconds=60,
        default_status=environment_settings().default_status(),  # needs S3 (lakehouse-live)
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
        reported = reported_hours(context.instance, scenario, cursor)
        try:
            with landing.reachable():
                outcome = discovery_for(scenario, landing).tick(cursor, reported)
        except LandingUnreachableError as exc:  # the tick says what is missing; cursor kept
            return dg.SensorResult(skip_reason=dg.SkipReason(str(exc)), cursor=context.cursor)
        partitions = regional_partitions if scenario == "regional" else hourly_partitions
        first = hourly_partitions.start.strftime("%Y-%m-%d %H:00")
        for change in outcome.changes:
            if not partitions.has_partition_key(change.partition_key):
                context.log.warning(
                    f"{scenario} hour {change.partition_key} is before the first partition "
                    f"({first}, partitions_start in environments.yaml): not loaded; move "
                    "partitions_start back to load it"
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
        for held in outcome.held:
            context.log.warning(held.describe())
        context.log.info(outcome.summary())
        if not requests:
            return dg.SensorResult(
                skip_reason=dg.SkipReason(f"no new or changed objects: {outcome.summary()}"),
                cursor=outcome.cursor.to_json(),
            )
        return dg.SensorResult(run_requests=requests, cursor=outcome.cursor.to_json())

    return landing_sensor


landing_sensors = [build_landing_sensor(scenario) for scenario in SCENARIOS]
