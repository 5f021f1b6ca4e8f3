"""The Definitions object that `dagster dev`, `dagster asset materialize` and CI load."""

from orchestration.defs import build_definitions

defs = build_definitions()
