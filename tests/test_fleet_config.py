"""The demo fleet's run config is checked before any node database is made (issue 17.9)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg


def test_an_unsafe_node_id_fails_at_once_and_makes_no_file(tmp_path: Path) -> None:
    from definitions import defs

    home = tmp_path / "home"
    home.mkdir()
    nodes = [
        {"node_id": "factory-ams-1", "pipeline_type": "raw"},
        {"node_id": "../x", "pipeline_type": "raw"},
    ]
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        result = defs.resolve_job_def("edge_demo_job").execute_in_process(
            run_config={"ops": {"demo__edge_fleet": {"config": {"nodes": nodes}}}},
            instance=instance,
            raise_on_error=False,
        )
    assert not result.success
    (failure,) = result.get_step_failure_events()
    data = failure.step_failure_data
    assert data.user_failure_data is not None  # a dg.Failure, not a crash
    assert data.user_failure_data.description == (
        "demo/edge_fleet run config: node id '../x' is not safe in an object key: use 1-63 "
        "letters, digits, '.', '_' or '-', starting with a letter or digit"
    )
    assert data.error is not None and "RetryRequested" not in data.error.to_string()
    # Nothing was simulated: not the bad node's file, and not the good one's before it.
    assert not (home / "x.db").exists() and not (tmp_path / "x.db").exists()
    assert not (home / "edge_nodes").exists()
