"""What the platform would cost for a fleet of a given size, scaled from what was measured here.

Unit figures come from the pipeline that ran: S3 bytes per reading (the landing Parquet and its
sidecars), seconds per asset run (every step's time over the runs measured), Lakebase bytes per
synced row. Compute has two parts: a fixed cost per run (each measured asset running once an
hour, whatever the fleet size) and the data itself at a configured processing rate (measured by
the benchmarks, not by the small runs here, where per-run overhead hides it). Prices are list
prices, overridable in the config.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestration.lakebase import cost

DAYS_PER_MONTH = 30
HOURS_PER_MONTH = 730


@dataclass(frozen=True)
class Measured:
    readings: int  # readings that reached silver
    s3_bytes: int
    compute_seconds: float
    compute_steps: int  # asset steps those seconds were spent in
    assets: int  # distinct assets that ran
    lakebase_bytes: int
    synced_rows: int


@dataclass(frozen=True)
class Fleet:
    nodes: int
    readings_per_node_per_day: int
    sensors_per_node: int
    uploads_per_node_per_day: int  # agent cycles: each puts a data object and its sidecar
    retention_days: int


@dataclass(frozen=True)
class Rates:
    s3_storage_gb_month: float
    s3_put_per_1000: float
    s3_get_per_1000: float
    compute_usd_per_hour: float
    readings_per_compute_second: float  # the pipeline's processing rate once data dominates
    lakebase: cost.Prices


def monthly_cost(fleet: Fleet, measured: Measured, rates: Rates) -> dict[str, float]:
    """USD per month by part (S3, compute, Lakebase) for `fleet`, from measured unit figures."""
    readings = fleet.nodes * fleet.readings_per_node_per_day * DAYS_PER_MONTH
    per_reading = measured.s3_bytes / max(measured.readings, 1)
    stored_gb = per_reading * readings / DAYS_PER_MONTH * fleet.retention_days / 1e9
    puts = 2 * fleet.nodes * fleet.uploads_per_node_per_day * DAYS_PER_MONTH
    s3 = (
        stored_gb * rates.s3_storage_gb_month
        + puts / 1000 * rates.s3_put_per_1000
        + puts / 1000 * rates.s3_get_per_1000  # bronze reads each object and sidecar once
    )
    per_run = measured.compute_seconds / max(measured.compute_steps, 1)
    runs = measured.assets * HOURS_PER_MONTH  # every asset at most once an hour
    seconds = runs * per_run + readings / rates.readings_per_compute_second
    compute = seconds / 3600 * rates.compute_usd_per_hour
    # Synced tables hold hourly rows per sensor (and per region); they grow with sensors, not
    # readings. One capacity unit takes ~1,500 continuous writes/s (the accelerator's sizing).
    synced_rows = fleet.nodes * fleet.sensors_per_node * 24 * fleet.retention_days
    row_bytes = measured.lakebase_bytes / max(measured.synced_rows, 1)
    lakebase_gb = synced_rows * row_bytes / 1e9
    writes_per_second = fleet.nodes * fleet.sensors_per_node / 3600
    cu = max(rates.lakebase.autoscaling_min_cu, writes_per_second / 1500)
    lakebase = cost.total(cost.autoscaling_monthly(cu, lakebase_gb, rates.lakebase))
    return {"s3": s3, "compute": compute, "lakebase": lakebase, "total": s3 + compute + lakebase}
