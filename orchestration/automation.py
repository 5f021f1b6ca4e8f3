"""Declarative automation for the derived layers: every upstream change, whatever its age."""

import dagster as dg


def on_upstream_change() -> dg.AutomationCondition:
    """Rebuild a partition (or an unpartitioned asset) once after any of its upstream
    partitions changed, once no upstream run is in progress.

    Unlike `eager()`, it does not stop at the latest hour (a node that was offline uploads hours
    that are days old) and does not wait for every upstream partition to exist (an hour with
    data from one scenario only is still an hour to build; an unpartitioned sync of a
    partitioned table would otherwise wait for all 16,000 hours).
    """
    return (
        dg.AutomationCondition.any_deps_updated().since_last_handled()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("on_upstream_change")


def lakehouse_automation_sensor(interval_seconds: int) -> dg.AutomationConditionSensorDefinition:
    """The environment's evaluation of every asset's automation condition, each
    `interval_seconds` (its `automation_interval_seconds`)."""
    return dg.AutomationConditionSensorDefinition(
        "lakehouse_automation_sensor",
        target=dg.AssetSelection.all(),
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Evaluates the assets' automation conditions: silver, gold and TRIGGERED "
        "synced tables follow every bronze change, late hours included.",
    )
