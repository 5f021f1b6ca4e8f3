"""Wall-clock work: the hourly catch-up of every layer."""

import dagster as dg

from edge_agent.contract import SCENARIOS
from orchestration.environment import Environment

_HOURLY = dg.AssetSelection.groups("silver", "gold") - dg.AssetSelection.assets(
    ["gold", "fleet_health"], ["gold", "readings_all_regions"]
)

lakehouse_hourly_job = dg.define_asset_job(
    "lakehouse_hourly_job",
    selection=dg.AssetSelection.assets(*[["bronze", s] for s in SCENARIOS if s != "regional"])
    | _HOURLY,
    description="Bronze (all scenarios but regional), silver and hourly gold for one hour.",
)
regional_bronze_job = dg.define_asset_job(
    "regional_bronze_job", selection=dg.AssetSelection.assets(["bronze", "regional"])
)


def lakehouse_schedules(env: Environment) -> list[dg.ScheduleDefinition]:
    # Catches up whatever the sensors missed; loads are partition replaces, so repeats are safe.
    hourly = dg.build_schedule_from_partitioned_job(
        lakehouse_hourly_job, minute_of_hour=15, name="lakehouse_hourly_schedule",
        default_status=env.settings.schedule_status(),
        description="Catch-up of the last hour's bronze, silver and hourly gold. Needs the "
        "landing S3 buckets reachable; stopped by default (a fresh machine has no S3 endpoint).",
    )  # fmt: skip

    @dg.schedule(
        job=regional_bronze_job, cron_schedule="20 * * * *", execution_timezone="UTC",
        default_status=env.settings.schedule_status(),
        description="The current hour of every region's bronze. Needs the regional S3 buckets "
        "reachable; stopped by default (a fresh machine has no S3 endpoint).",
    )  # fmt: skip
    def regional_bronze_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
        """The current hour of every region's bronze, each hour."""
        hour = context.scheduled_execution_time.strftime("%Y-%m-%d-%H:00")
        return [
            dg.RunRequest(
                run_key=f"{hour}|{region}",
                partition_key=str(dg.MultiPartitionKey({"hour": hour, "region": region})),
            )
            for region in env.regions
        ]

    return [hourly, regional_bronze_schedule]
