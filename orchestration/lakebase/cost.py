"""Lakebase cost: the accelerator's provisioned model and the autoscaling model, as pure math."""

from __future__ import annotations

import math

import dagster as dg

from orchestration.lakebase.workload import SyncPolicy, Workload

HOURS_PER_MONTH = 730
CU_SIZES = (1, 2, 4, 8)
SYNCS_PER_MONTH = {"per hour": 730, "per day": 30, "per week": 4.35, "per month": 1}
# GB per hour one triggered pipeline moves, by policy and CU (CU capped at 4)
SYNC_RATE_GB_PER_HOUR = {
    SyncPolicy.SNAPSHOT: {1: 54.0, 2: 108.0, 4: 216.0},
    SyncPolicy.TRIGGERED: {1: 4.5, 2: 9.0, 4: 18.0},
}
MAX_STORAGE_GB = 2048  # 2 TB per instance
MAX_CONNECTIONS = 1000


class Prices(dg.Config):
    """List prices (USD); override them in the report's config for a contract's rates."""

    cu_year: float = 3500.0
    storage_gb_month: float = 0.345
    continuous_pipeline_month: float = 548.0
    triggered_sync_hour: float = 0.75
    autoscaling_cu_hour: float = 0.111
    autoscaling_storage_gb_month: float = 0.35
    autoscaling_min_cu: float = 0.5
    autoscaling_max_cu: float = 32.0


def capacity_units(bulk_writes: float, continuous_writes: float, reads: float) -> int:
    """The accelerator's sizing, rounded up to an instance size (1, 2, 4 or 8 CU)."""
    needed = bulk_writes / 14000 + continuous_writes / 1500 + reads / 10000
    return next((size for size in CU_SIZES if needed <= size), CU_SIZES[-1])


def sync_hours(gb: float, policy: SyncPolicy, cu: int) -> float:
    """One triggered sync: 10 minutes of start-up plus the data at the policy's rate."""
    rates = SYNC_RATE_GB_PER_HOUR[
        policy if policy in SYNC_RATE_GB_PER_HOUR else SyncPolicy.TRIGGERED
    ]
    return 10 / 60 + gb / rates[min(cu, 4)]


def syncs_per_month(frequency: str) -> float:
    try:
        return SYNCS_PER_MONTH[frequency.strip().lower()]
    except KeyError:
        known = ", ".join(SYNCS_PER_MONTH)
        raise ValueError(f"sync_frequency {frequency!r} is not one of: {known}") from None


def provisioned_monthly(workload: Workload, storage_gb: float, prices: Prices) -> dict[str, float]:
    """Monthly cost by item under the accelerator's provisioned model."""
    instance, sync = workload.database_instance, workload.delta_synchronization
    cu = capacity_units(
        instance.bulk_writes_per_second, instance.continuous_writes_per_second,
        instance.reads_per_second,
    )  # fmt: skip
    secondaries = instance.number_of_readable_secondaries * instance.readable_secondary_size_cu
    discount = 1 - instance.promotion_percentage / 100
    compute = (cu + secondaries) * prices.cu_year / 12 * discount
    triggered = (
        sum(t.scheduling_policy is not SyncPolicy.CONTINUOUS for t in sync.tables_to_sync) or 1
    )
    hours = sync_hours(sync.expected_data_per_sync_gb, sync.sync_mode, cu)
    return {
        "capacity_units": cu,
        "compute": compute,
        "storage": storage_gb * prices.storage_gb_month,
        "continuous_pipelines": sync.continuous_pipelines() * prices.continuous_pipeline_month,
        "triggered_syncs": triggered
        * syncs_per_month(sync.sync_frequency)
        * hours
        * prices.triggered_sync_hour,
        "sync_hours_each": hours,
    }


def autoscaling_monthly(cu: float, storage_gb: float, prices: Prices) -> dict[str, float]:
    """Monthly cost by item under autoscaling Lakebase, the CU clamped to its range."""
    clamped = min(max(cu, prices.autoscaling_min_cu), prices.autoscaling_max_cu)
    return {
        "capacity_units": clamped,
        "compute": clamped * HOURS_PER_MONTH * prices.autoscaling_cu_hour,
        "storage": storage_gb * prices.autoscaling_storage_gb_month,
    }


def total(items: dict[str, float]) -> float:
    return sum(v for k, v in items.items() if k not in ("capacity_units", "sync_hours_each"))


def limit_warnings(storage_gb: float, cu: int) -> list[str]:
    warnings = []
    if storage_gb > MAX_STORAGE_GB:
        warnings.append(f"{storage_gb:.0f} GB exceeds the 2 TB limit of one instance")
    if cu >= CU_SIZES[-1]:
        warnings.append("the workload needs the largest instance (8 CU); consider splitting it")
    return warnings


def gb(n_bytes: float) -> float:
    return n_bytes / 1024**3


def ceil_cents(value: float) -> float:
    return math.ceil(value * 100) / 100
