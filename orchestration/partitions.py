"""Partition definitions shared by the layers."""

import dagster as dg

# Event-time hours. end_offset=1 makes the current, still-filling hour a valid partition.
hourly_partitions = dg.HourlyPartitionsDefinition(start_date="2025-01-01-00:00", end_offset=1)
