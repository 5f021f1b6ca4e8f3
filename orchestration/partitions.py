"""Partition definitions shared by the layers."""

import dagster as dg

from orchestration.settings import environment_settings

# Event-time hours from the environment's `partitions_start`. end_offset=1 makes the current,
# still-filling hour a valid partition.
hourly_partitions = dg.HourlyPartitionsDefinition(
    start_date=environment_settings().partitions_start, end_offset=1
)

# Regions that have a regional landing bucket (the environment's `regional_regions`); regional
# bronze is split by them as well.
REGIONS = environment_settings().regional_regions
regional_partitions = dg.MultiPartitionsDefinition(
    {"hour": hourly_partitions, "region": dg.StaticPartitionsDefinition(list(REGIONS))}
)
