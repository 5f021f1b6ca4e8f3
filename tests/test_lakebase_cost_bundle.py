"""Cost formulas, the workload file, the generated Asset Bundle and the token refresh."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import yaml

from orchestration.lakebase import cost
from orchestration.lakebase.bundle import bundle_yaml
from orchestration.lakebase.postgres import Lakebase, TokenCache
from orchestration.lakebase.workload import SyncPolicy, WorkloadError, load_workload
from orchestration.settings import environment_settings


@pytest.mark.parametrize(
    ("bulk", "continuous", "reads", "cu"),
    [(0, 0, 0, 1), (14000, 0, 0, 1), (14001, 0, 0, 2), (15000, 500, 2000, 2),
     (0, 4500, 10000, 4), (0, 0, 50000, 8), (0, 0, 900000, 8)],
)  # fmt: skip
def test_capacity_units_round_up_to_an_instance_size(
    bulk: float, continuous: float, reads: float, cu: int
) -> None:
    assert cost.capacity_units(bulk, continuous, reads) == cu


def test_sync_hours_use_the_policy_rate_with_cu_capped_at_four() -> None:
    assert cost.sync_hours(54, SyncPolicy.SNAPSHOT, 1) == pytest.approx(10 / 60 + 1)
    assert cost.sync_hours(18, SyncPolicy.TRIGGERED, 8) == pytest.approx(10 / 60 + 1)


def test_provisioned_and_autoscaling_models_from_the_workload() -> None:
    workload = load_workload()  # 15000 bulk + 500 continuous + 2000 reads -> 2 CU
    prices = cost.Prices()
    provisioned = cost.provisioned_monthly(workload, storage_gb=10, prices=prices)
    assert provisioned["capacity_units"] == 2
    assert provisioned["compute"] == pytest.approx(2 * 3500 / 12)
    assert provisioned["storage"] == pytest.approx(3.45)
    assert provisioned["continuous_pipelines"] == 548  # one CONTINUOUS table
    hours = 10 / 60 + 0.2 / 9  # TRIGGERED at 2 CU
    assert provisioned["triggered_syncs"] == pytest.approx(3 * 730 * hours * 0.75)
    autoscaling = cost.autoscaling_monthly(2, storage_gb=10, prices=prices)
    assert autoscaling["compute"] == pytest.approx(2 * 730 * 0.111)
    assert cost.autoscaling_monthly(100, 0, prices)["capacity_units"] == 32


def test_a_bad_workload_names_the_file_and_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "workload.yaml"
    path.write_text("delta_synchronization:\n  tables_to_sync:\n    - name: orders\n")
    with pytest.raises(WorkloadError, match=r"(?s)workload.yaml.*primary_keys"):
        load_workload(path)


def test_the_bundle_parses_and_carries_every_table_with_its_keys_and_policy() -> None:
    workload = load_workload()
    resources = yaml.safe_load(bundle_yaml(workload, environment_settings("prod")))["resources"]
    assert set(resources) == {"database_instances", "database_catalogs", "synced_database_tables"}
    assert resources["database_instances"]["lakebase"]["capacity"] == "CU_2"
    synced = resources["synced_database_tables"]
    for table in workload.delta_synchronization.tables_to_sync:
        spec = synced[table.name]["spec"]
        assert spec["source_table_full_name"] == f"lakehouse.prod.{table.name}"
        assert spec["primary_key_columns"] == table.primary_keys
        assert spec["scheduling_policy"] == table.scheduling_policy.value
        assert spec.get("timeseries_key") == table.timeseries_key
        assert spec["new_pipeline_spec"] == {"storage_catalog": "lakehouse",
                                             "storage_schema": "prod"}  # fmt: skip


def test_tokens_are_fetched_again_at_59_minutes() -> None:
    now = [0.0]
    issued = iter(f"token-{i}" for i in range(10))
    tokens = TokenCache(lambda: next(issued), clock=lambda: now[0])
    assert tokens.current() == "token-0"
    now[0] = 58 * 60
    assert tokens.current() == "token-0"
    now[0] = 59 * 60
    assert tokens.current() == "token-1" and tokens.fetches == 2


def issue_token() -> str:
    """Stands in for the Databricks SDK's credential call (no workspace can run here)."""
    return "oauth-token-for-test"


def test_a_configured_token_provider_is_the_connection_password(lakebase_db: str) -> None:
    lakebase = Lakebase(dsn=lakebase_db, token_provider=f"{__name__}:issue_token")
    with lakebase.connect() as conn:  # the embedded server trusts local sockets
        assert conn.info.password == "oauth-token-for-test"
    assert "oauth-token-for-test" not in lakebase.psql_command()
    assert "oauth-token-for-test" not in lakebase.connection_url()  # the UI's link
    with psycopg.connect(lakebase.adbc_uri()) as conn:
        assert conn.info.password == "oauth-token-for-test"


def test_the_connection_link_never_carries_a_password() -> None:
    dsn = "host=db.example.com port=5433 dbname=lakebase user=app password=s3cret sslmode=require"
    url = Lakebase(dsn=dsn).connection_url()
    assert url == "postgresql://app@db.example.com:5433/lakebase?sslmode=require"


def test_query_conversion_reports_what_it_cannot_convert(tmp_path: Path) -> None:
    from orchestration.lakebase.convert import convert_folder

    (tmp_path / "good.sql").write_text("SELECT nvl(region, 'none') FROM t WHERE ts >= "
                                       "date_sub(current_date(), 7)")  # fmt: skip
    (tmp_path / "broken.sql").write_text("SELECT FROM WHERE (")
    results = {c.name: c for c in convert_folder(tmp_path)}
    assert results["good"].postgres and "COALESCE(region, 'none')" in results["good"].postgres
    assert results["broken"].postgres is None and results["broken"].error
