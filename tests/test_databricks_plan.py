"""The Databricks engine's generated statements, pinned; both engines' graphs, compared.

The snapshot holds every Databricks SQL statement and Delta write spec (replaceWhere, schema
merge, Change Data Feed) generated from the transforms for a fixed window. A change to the
transforms or to sqlglot shows up here in review. Refresh it with
`UPDATE_SNAPSHOTS=1 uv run --group databricks pytest tests/test_databricks_plan.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestration.bronze.targets import PartitionTarget
from orchestration.databricks import plan
from orchestration.databricks.plan_cli import main as plan_main
from orchestration.settings import environment_settings, load_environments

SNAPSHOT = Path(__file__).parent / "snapshots" / "databricks_statements.sql"
START, END = datetime(2026, 11, 25, 10, tzinfo=UTC), datetime(2026, 11, 25, 12, tzinfo=UTC)
ROOT = Path(__file__).parent.parent


def _generated() -> str:
    settings = environment_settings("databricks")
    targets = [
        PartitionTarget("2026-11-25-10:00", START, "edge-databricks-raw-us-east-1"),
        PartitionTarget(
            "2026-11-25-11:00", START.replace(hour=11), "edge-databricks-raw-us-east-1"
        ),
    ]
    regional = [
        PartitionTarget("2026-11-25-10:00|eu-west-1", START, "edge-databricks-regional-eu-west-1",
                        "eu-west-1"),
    ]  # fmt: skip
    bronze = {
        "bronze/raw": plan.bronze_extras(settings, "bronze_raw", targets, [], "addNewColumns", {}),
        "bronze/regional": plan.bronze_extras(
            settings, "bronze_regional", regional, [], "rescue", {}
        ),
    }
    statements = json.loads(plan.all_statements(settings, START, END))
    return {**bronze, **statements}


def _render(generated: dict[str, dict]) -> str:
    """One reviewable text: each statement as SQL, each write spec as one JSON line."""
    out = []
    for asset, extras in sorted(generated.items()):
        for field in ("select", "dedup", "violations", "kept"):
            if field in extras:
                out.append(f"-- {asset}: {field}\n{extras[field]};\n")
        for scenario, select in sorted(extras.get("selects", {}).items()):
            out.append(f"-- {asset}: select from bronze_{scenario}\n{select};\n")
        if "write" in extras:
            out.append(
                f"-- {asset}: Delta write\n-- {json.dumps(extras['write'], sort_keys=True)}\n"
            )
        if extras.get("step") == "bronze_autoloader":
            stream = {k: extras[k] for k in ("sources", "options", "checkpoint", "trigger")}
            out.append(f"-- {asset}: Auto Loader stream\n-- {json.dumps(stream, sort_keys=True)}\n")
        if extras.get("view"):
            out.append(f"-- {asset}: CREATE OR REPLACE VIEW over the select above\n")
    return "\n".join(out)


def test_generated_databricks_statements_match_the_snapshot() -> None:
    pinned = _generated()
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(_render(pinned))
    assert SNAPSHOT.read_text() == _render(pinned), "generated Databricks SQL changed: review, " \
        "then refresh with UPDATE_SNAPSHOTS=1"  # fmt: skip
    # Delta-only statements local Spark cannot run, pinned here.
    assert pinned["gold/sensor_hourly_stats"]["write"] == {
        "mode": "overwrite",
        "options": {
            "mergeSchema": "true",
            "replaceWhere": "hour >= TIMESTAMP '2026-11-25 10:00:00' "
            "AND hour < TIMESTAMP '2026-11-25 12:00:00'",
        },
        "table_properties": {"delta.enableChangeDataFeed": "true"},
    }
    assert pinned["bronze/raw"]["write"]["options"]["replaceWhere"] == (
        "_partition_hour IN (TIMESTAMP '2026-11-25 10:00:00', TIMESTAMP '2026-11-25 11:00:00')"
    )
    assert "_region = 'eu-west-1'" in pinned["bronze/regional"]["write"]["options"]["replaceWhere"]
    autoloader = pinned["bronze/raw (autoloader)"]
    assert autoloader["trigger"] == {"availableNow": True}
    assert autoloader["options"]["cloudFiles.schemaEvolutionMode"] == "addNewColumns"
    assert autoloader["options"]["rescuedDataColumn"] == "_rescued_data"
    assert autoloader["options"]["cloudFiles.schemaLocation"].startswith("/Volumes/")
    # Translation gaps sqlglot leaves are closed in the DuckDB source, not patched afterwards.
    text = json.dumps(pinned)
    for duckdb_only in ("regexp_full_match", "QUALIFY", "EXCLUDE", "$start", "TIMESTAMPTZ"):
        assert duckdb_only not in text


def _graph(env: str) -> dict[str, tuple]:
    os.environ["LAKEHOUSE_ENV"] = env
    try:
        from orchestration.defs import build_definitions

        defs = build_definitions()
    finally:
        del os.environ["LAKEHOUSE_ENV"]
    graph = {}
    for node in defs.resolve_asset_graph().asset_nodes:
        if node.group_name not in {"bronze", "silver", "gold"}:
            continue
        condition = node.automation_condition
        graph[node.key.to_user_string()] = (
            type(node.partitions_def).__name__,
            condition.get_label() if condition else None,
            tuple(sorted(k.to_user_string() for k in node.parent_keys)),
            tuple(sorted(c.name for c in node.check_keys)),
            frozenset(node.kinds),
        )
    return graph


def test_both_engines_have_the_same_graph_and_only_kinds_differ() -> None:
    duck, databricks = _graph("dev"), _graph("databricks")
    assert duck.keys() == databricks.keys() and len(duck) == 11
    for key in duck:
        assert duck[key][:4] == databricks[key][:4], key
        assert "duckdb" in duck[key][4] and "databricks" in databricks[key][4]


@pytest.mark.parametrize("env", sorted(load_environments()))
def test_definitions_validate_in_every_environment_without_credentials(env: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "AWS_"))}
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-f", "definitions.py"],
        cwd=ROOT, env={**clean, "LAKEHOUSE_ENV": env}, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]


def test_plan_command_prints_one_job_per_asset_for_a_range(capsys: pytest.CaptureFixture) -> None:
    assert plan_main(["--start", "2026-11-25-10:00", "--end", "2026-11-28-09:00"]) == 0
    out = capsys.readouterr().out
    assert "72 hour(s), one Databricks job run per asset" in out
    assert out.count("job specification:") == 5  # silver, 3 hourly gold, fleet health
    assert "replaceWhere" in out and "files.download('/Volumes/" in out
    with pytest.raises(SystemExit) as exit_info:
        plan_main(["--start", "yesterday"])
    assert exit_info.value.code == 2
    assert "is not an hour key" in capsys.readouterr().err
