"""Data-quality expectations for silver, in Delta Live Tables' vocabulary.

expect: the row stays, violations are counted (a WARN check).
expect_or_drop: the row is removed from silver, and counted (a WARN check with the count).
expect_or_fail: any violation fails the update, and the check blocks downstream (ERROR).

Each is a Dagster check named with its action as Lakeflow names it (warn, drop, fail), so the
check list in the UI says what a violation does: `drop_temperature_in_range`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edge_agent.contract import ANOMALY_TYPES, PHYSICAL_RANGES, SENSOR_ID_PATTERN

Action = Literal["expect", "expect_or_drop", "expect_or_fail"]
# Lakeflow's words for what a violation does: warn (the default), drop, fail.
ON_VIOLATION: dict[str, str] = {
    "expect": "warn",
    "expect_or_drop": "drop",
    "expect_or_fail": "fail",
}


@dataclass(frozen=True)
class Expectation:
    name: str
    action: Action
    condition: str  # SQL over the staged silver rows; TRUE means the row meets it
    description: str

    @property
    def check_name(self) -> str:
        """The Dagster check: the action first, then the expectation (`fail_sensor_id_present`)."""
        return f"{ON_VIOLATION[self.action]}_{self.name}"


def _range(column: str) -> str:
    low, high = PHYSICAL_RANGES[column]
    parts = [
        f"{column} >= {low}" if low is not None else "",
        f"{column} <= {high}" if high is not None else "",
    ]
    return f"({column} IS NULL OR ({' AND '.join(p for p in parts if p)}))"


_ANOMALY_TYPES = ", ".join(f"'{t}'" for t in ANOMALY_TYPES)

EXPECTATIONS: tuple[Expectation, ...] = (
    Expectation("sensor_id_present", "expect_or_fail", "sensor_id IS NOT NULL",
                "every reading names its sensor"),
    Expectation("event_time_present", "expect_or_fail", "event_time IS NOT NULL",
                "every reading has a parsed event time"),
    Expectation("sensor_id_format", "expect_or_drop",
                f"regexp_matches(sensor_id, '^{SENSOR_ID_PATTERN.strip('^$')}$')",
                "sensor ids look like ABC_123456"),
    *(
        Expectation(f"{c}_in_range", "expect_or_drop", _range(c), f"{c} within physical limits")
        for c in ("temperature", "humidity", "pressure", "voltage", "vibration", "latitude",
                  "longitude")
    ),
    Expectation("anomaly_type_known", "expect",
                f"coalesce(anomaly_flag, 0) = 0 OR anomaly_type IN ({_ANOMALY_TYPES})",
                "flagged anomalies say which kind"),
    Expectation("event_time_not_in_future", "expect",
                "event_time <= current_timestamp + INTERVAL 5 MINUTE",
                "node clocks are not ahead of the platform's"),
)  # fmt: skip
