"""Environment settings (dev / staging / prod) from one variable, LAKEHOUSE_ENV."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

ENVIRONMENT_VARIABLE = "LAKEHOUSE_ENV"
_FILE = Path(__file__).with_name("environments.yaml")


@dataclass(frozen=True)
class EnvironmentSettings:
    name: str
    catalog: str
    schema: str
    max_files_per_run: int
    target_file_size_mb: int
    sensor_lookback_hours: int
    full_scan_interval_hours: int
    max_keys_per_tick: int
    silent_after_hours: int

    def table_name(self, layer: str, entity: str) -> str:
        """`{catalog}.{schema}.{layer}_{entity}`, unquoted (for display and metadata)."""
        return f"{self.catalog}.{self.schema}.{layer}_{entity}"


@cache
def _all() -> dict[str, dict[str, object]]:
    return yaml.safe_load(_FILE.read_text())


def environment_settings(name: str | None = None) -> EnvironmentSettings:
    """Settings for `name`, or for LAKEHOUSE_ENV (default dev); read when called, not imported."""
    chosen = name or os.environ.get(ENVIRONMENT_VARIABLE) or "dev"
    environments = _all()
    if chosen not in environments:
        raise ValueError(
            f"{ENVIRONMENT_VARIABLE}={chosen!r} is not one of {', '.join(environments)}"
        )
    return EnvironmentSettings(name=chosen, **environments[chosen])  # type: ignore[arg-type]
