"""Dagster code for the edge-to-lakehouse platform: assets, resources, sensors, schedules."""
