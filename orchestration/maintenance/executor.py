"""The project's executor: Dagster's default one, which first tags the run with its worker's
machine, so `dead_run_sensor` only judges runs whose pid means something on its host."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dagster as dg

from orchestration.maintenance.worker_host import worker_identity


class HostTaggingExecutor(dg.Executor):
    """Runs `inner` after recording, in the run worker's own process, where that process runs."""

    def __init__(self, inner: dg.Executor) -> None:
        self._inner = inner

    @property
    def retries(self) -> Any:
        return self._inner.retries

    @property
    def step_dependency_config(self) -> Any:
        return self._inner.step_dependency_config

    def execute(self, plan_context: Any, execution_plan: Any) -> Iterator[dg.DagsterEvent]:
        # Before any step claims a pool slot: a run that holds one always says where it ran.
        plan_context.instance.add_run_tags(
            plan_context.run_id, worker_identity(plan_context.run_id)
        )
        yield from self._inner.execute(plan_context, execution_plan)


_DEFAULT = dg.multi_or_in_process_executor


def _create(init_context: dg.InitExecutorContext) -> dg.Executor:
    create = _DEFAULT.executor_creation_fn
    assert create is not None  # Dagster's default executor always has one
    return HostTaggingExecutor(create(init_context))


# Same name, config and requirements as Dagster's default, so run config is unchanged.
host_tagging_executor = dg.ExecutorDefinition(
    name=_DEFAULT.name,
    config_schema=_DEFAULT.config_schema,
    requirements=_DEFAULT.get_requirements,
    executor_creation_fn=_create,
    description="Dagster's default executor (multiprocess or in-process), which also tags each "
    "run with the machine its worker runs on.",
)
