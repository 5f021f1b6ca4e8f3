"""One environment per set of definitions, resolved once: two environments built in one process
share nothing, a local installation's partitions start near its data, and the UI can name
every table (and show its engine, catalog, schema and regions) before anything has run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from orchestration.defs import build_definitions
from orchestration.environment import INSTALLATION_FILE
from orchestration.settings import ConfigurationError

TABLE_GROUPS = ("bronze", "silver", "gold", "lakebase")


def _specs(defs: dg.Definitions) -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    return {key.to_user_string(): graph.get(key) for key in graph.get_all_asset_keys()}


def _strings(defs: dg.Definitions) -> str:
    """Everything a definition says that names an environment: table names, resource fields,
    partitions, descriptions; as one text to search."""
    parts = []
    for key, node in _specs(defs).items():
        parts.append(key)
        parts += [f"{k}={v}" for k, v in (node.metadata or {}).items()]
        if node.partitions_def is not None:
            parts.append(str(node.partitions_def))
    for name, resource in defs.resources.items():
        fields = resource.model_dump() if hasattr(resource, "model_dump") else {}
        parts.append(f"{name}: {json.dumps(fields, default=str)}")
    return "\n".join(parts)


def test_two_environments_in_one_process_share_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setenv("LAKEHOUSE_ENV", "dev")
    dev = build_definitions()
    prod = build_definitions(environment="prod")
    monkeypatch.setenv("LAKEHOUSE_ENV", "staging")  # read when built, never again

    dev_text, prod_text = _strings(dev), _strings(prod)
    assert "lakehouse.prod." in prod_text and "lakehouse.prod." not in dev_text
    assert "lakehouse.dev." in dev_text and "lakehouse.dev." not in prod_text
    assert "staging" not in dev_text + prod_text
    # The resources carry their environment: what the UI's resource pages show.
    engine = prod.resources["engine"]
    assert (engine.engine, engine.environment, engine.catalog, engine.schema_name) == (
        "duckdb", "prod", "lakehouse", "prod")  # fmt: skip
    assert engine.regions == ["us-east-1", "eu-west-1"]
    assert engine.settings().schema == "prod"  # LAKEHOUSE_ENV is staging by now
    assert prod.resources["warehouse"].path().name == "warehouse_prod.duckdb"
    assert dev.resources["warehouse"].path().name == "warehouse_dev.duckdb"
    # The simulated fleet exists where one is simulated (dev), not in prod.
    assert "demo/edge_fleet" in _specs(dev) and "demo/edge_fleet" not in _specs(prod)
    assert not any(j.name == "edge_demo_job" for j in prod.jobs or [])
    assert not any(s.name == "edge_fleet_sensor" for s in prod.sensors or [])
    landing = _specs(prod)["landing/raw"]
    assert not landing.parent_keys  # no arrow from a fleet that does not exist
    # Partitions: prod's fixed start, dev's where this installation's data starts.
    assert _specs(prod)["silver/sensor_readings"].partitions_def.start == datetime(
        2026, 10, 1, tzinfo=UTC
    )
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert _specs(dev)["silver/sensor_readings"].partitions_def.start == today - timedelta(days=14)


def test_a_local_installation_keeps_the_start_it_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    first = build_definitions(environment="dev")
    recorded = json.loads((tmp_path / INSTALLATION_FILE).read_text())
    start = _specs(first)["bronze/raw"].partitions_def.start
    assert recorded["first_partition"] == start.strftime("%Y-%m-%d-%H:00")
    assert (tmp_path / INSTALLATION_FILE).stat().st_mode & 0o077 == 0  # owner only
    # Weeks later (here: the file says so), the start has not moved with the clock.
    (tmp_path / INSTALLATION_FILE).write_text(json.dumps({"first_partition": "2026-09-01-00:00"}))
    later = build_definitions(environment="live")
    assert _specs(later)["silver/sensor_readings"].partitions_def.start == datetime(
        2026, 9, 1, tzinfo=UTC
    )
    partitions = _specs(later)["silver/sensor_readings"].partitions_def
    hours = partitions.get_num_partitions()
    assert hours == len(partitions.get_partition_keys())  # grows with time, from that start
    # A damaged record is one sentence, never silently replaced (the start would move).
    future = '{"first_partition": "2999-01-01-00:00"}'
    for damaged, why in (("{not json", "fix or delete the file"), (future, "in the future")):
        (tmp_path / INSTALLATION_FILE).write_text(damaged)
        with pytest.raises(ConfigurationError, match=why):
            build_definitions(environment="dev")


def test_an_existing_installation_keeps_its_earlier_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upgrading a DAGSTER_HOME that already holds an instance and a warehouse: no hour it
    has materialized falls out of the partitions."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    (tmp_path / "storage").mkdir()
    (tmp_path / "warehouse_dev.duckdb").write_bytes(b"")
    defs = build_definitions(environment="dev")
    assert _specs(defs)["bronze/raw"].partitions_def.start == datetime(2026, 10, 1, tzinfo=UTC)


@pytest.mark.parametrize("environment", ["dev", "databricks"])
def test_every_table_asset_names_its_table_before_it_has_run(
    environment: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    defs = build_definitions(environment=environment)
    schema = "dev" if environment == "dev" else "prod"
    tables = {key: node for key, node in _specs(defs).items() if key.split("/")[0] in TABLE_GROUPS}
    assert len(tables) == 5 + 1 + 5 + 4  # bronze, silver, gold, synced tables
    for key, node in tables.items():
        name = node.metadata.get("dagster/table_name")
        assert name, key
        layer = key.split("/")[0]
        if layer == "lakebase":
            assert name == f"{schema}.{key.split('/')[1]}", key
        else:
            assert name == f"lakehouse.{schema}.{key.replace('/', '_')}", key
        if layer in ("silver", "gold"):
            columns = node.metadata["dagster/column_schema"].columns
            assert len(columns) >= 4 and all(c.description for c in columns[:2]), key


def test_run_config_for_one_field_keeps_the_environment_of_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dagster builds a resource from its class defaults plus the run config's fields: a run
    that sets only the bucket prefix or a lock timeout still uses staging's file and regions,
    and what the engine works through is what the run configured."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    staging = build_definitions(environment="staging")
    seen: dict[str, Any] = {}

    @dg.asset(required_resource_keys={"warehouse", "landing", "engine"})
    def probe(context) -> None:  # type: ignore[no-untyped-def]  # (a string annotation fails)
        seen["file"] = context.resources.warehouse.path().name
        seen["timeout"] = context.resources.warehouse.lock_timeout_seconds
        seen["prefix"] = context.resources.landing.bucket_prefix
        seen["regions"] = context.resources.landing.regional_regions
        seen["schema"] = context.resources.engine.settings().schema

    keys = ("warehouse", "landing", "engine")
    defs = dg.Definitions(assets=[probe], resources={k: staging.resources[k] for k in keys})
    defs.get_implicit_global_asset_job_def().execute_in_process(
        run_config={
            "resources": {
                "warehouse": {"config": {"lock_timeout_seconds": 5}},
                "landing": {"config": {"bucket_prefix": "acme"}},
            }
        }
    )
    assert seen == {
        "file": "warehouse_staging.duckdb",
        "timeout": 5,
        "prefix": "acme",
        "regions": ["us-east-1", "eu-west-1"],
        "schema": "staging",
    }
    # Every asset that calls the engine requires what the engine works through: run config
    # for `warehouse` reaches the tables the engine writes.
    graph = staging.resolve_asset_graph()
    for key in ("bronze/raw", "silver/sensor_readings", "gold/fleet_health"):
        node = graph.get(dg.AssetKey.from_user_string(key))
        assert {"engine", "warehouse", "lakebase"} <= set(node.assets_def.required_resource_keys), (
            key
        )
