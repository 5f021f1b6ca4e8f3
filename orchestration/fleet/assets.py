"""`demo/edge_fleet`: simulated edge nodes whose agents Dagster launches over Pipes."""

import sys
from pathlib import Path
from typing import Any

import dagster as dg

from edge_agent.contract import PIPES_MESSAGE_KIND, validate_node_id
from edge_agent.control import ControlStore
from edge_agent.database import NodeDatabase
from edge_agent.errors import ConfigError
from edge_agent.simulate import SimulationSpec, simulate
from orchestration.environment import Environment
from orchestration.fleet.config import EdgeNodeSpec, FleetConfig
from orchestration.home import private_directory
from orchestration.resources import LandingZone
from orchestration.settings import ConfigurationError


def node_database(instance: dg.DagsterInstance, node_id: str) -> Path:
    """The node's SQLite file under the instance; `node_id` must already be validated."""
    directory = private_directory(Path(instance.root_directory) / "edge_nodes")
    return directory / f"{node_id}.db"


def validate_fleet(config: FleetConfig) -> None:
    """Every node id is safe as a file name and an object key, checked before any file is made
    (a run config's `../x` would otherwise create a database outside `edge_nodes`)."""
    for node in config.nodes:
        try:
            validate_node_id(node.node_id)
        except ConfigError as exc:
            raise ConfigurationError(f"demo/edge_fleet run config: {exc}") from exc


def landing_materialization(message: dict[str, Any]) -> dg.AssetMaterialization:
    """An agent's upload report (a Pipes custom message) as a landing materialization."""
    return dg.AssetMaterialization(
        asset_key=dg.AssetKey(message["asset_key"].split("/")),
        partition=message["partition"],
        description=message.get("description"),
        metadata=message["metadata"],
    )


def _agent_env(node: EdgeNodeSpec, landing: LandingZone) -> dict[str, str]:
    env = {
        "AWS_REGION": node.region,
        "EDGE_AGENT_BUCKET_PREFIX": landing.bucket_prefix,
        "EDGE_AGENT_LAKEHOUSE_REGION": landing.lakehouse_region,
    }
    endpoint = landing.resolved_endpoint()
    if endpoint:
        env["EDGE_AGENT_S3_ENDPOINT_URL"] = endpoint
    return env


@dg.asset(
    key=["demo", "edge_fleet"],
    group_name="demo",
    kinds={"python", "sqlite", "s3"},
)
def edge_fleet(
    context: dg.AssetExecutionContext,
    config: FleetConfig,
    landing: LandingZone,
    pipes_subprocess_client: dg.PipesSubprocessClient,
) -> dg.MaterializeResult:
    """Simulated edge nodes: new readings per node, then each node's agent uploads them."""
    rows: list[str] = []
    totals = {"uploaded": 0, "rejected": 0, "objects": 0, "reports": 0}
    validate_fleet(config)
    for node in config.nodes:
        db = node_database(context.instance, node.node_id)
        simulate(
            db,
            SimulationSpec(
                rows=config.rows_per_node,
                sensors=config.sensors_per_node,
                node_id=node.node_id,
                invalid_fraction=config.invalid_fraction,
                late_fraction=config.late_fraction,
            ),
        )
        with NodeDatabase(db) as node_db:
            ControlStore(node_db).set_pipeline(
                node.pipeline_type, f"dagster run {context.run_id[:8]}"
            )
        invocation = pipes_subprocess_client.run(
            command=[
                sys.executable, "-m", "edge_agent", "upload", "--once",
                "--db", str(db), "--node-id", node.node_id,
            ],
            context=context,
            env=_agent_env(node, landing),
        )  # fmt: skip
        for message in invocation.get_custom_messages():
            if isinstance(message, dict) and message.get("kind") == PIPES_MESSAGE_KIND:
                context.log_event(landing_materialization(message))
                totals["reports"] += 1
        with NodeDatabase(db) as node_db:
            execution = ControlStore(node_db).history(1)[0]
        totals["uploaded"] += execution.rows_uploaded
        totals["rejected"] += execution.rows_rejected
        totals["objects"] += execution.objects_written
        bucket = landing.bucket(node.pipeline_type, node.region)
        rows.append(
            f"| {node.node_id} | {node.pipeline_type} | s3://{bucket} | {execution.rows_read} | "
            f"{execution.rows_uploaded} | {execution.rows_rejected} | {execution.objects_written} |"
        )
    table = "\n".join(
        [
            "| node | pipeline | bucket | rows read | rows uploaded | rejected | objects |",
            "|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    return dg.MaterializeResult(
        metadata={
            "nodes": dg.MetadataValue.md(table),
            "rows_uploaded": totals["uploaded"],
            "rows_rejected": totals["rejected"],
            "objects_written": totals["objects"],
            "landing_reports": totals["reports"],
        }
    )


edge_demo_job = dg.define_asset_job(
    "edge_demo_job",
    selection=dg.AssetSelection.assets(edge_fleet),
    description="Simulated fleet uploads to the landing buckets (the README's main job).",
)


IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def edge_fleet_sensor(env: Environment) -> dg.SensorDefinition:
    @dg.sensor(
        job=edge_demo_job,
        minimum_interval_seconds=env.settings.fleet_interval_seconds,
        default_status=env.settings.default_status(),
        description="The simulated fleet, live: every interval each node records new readings "
        "(a few late, some invalid) and its agent uploads them. Needs the landing S3 endpoint; "
        "stopped by default, running under `lakehouse-live`, which starts one.",
    )
    def edge_fleet_sensor(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        active = context.instance.get_runs(
            dg.RunsFilter(job_name="edge_demo_job", statuses=IN_PROGRESS), limit=1
        )
        if active:  # one fleet round at a time
            return dg.SkipReason("the previous fleet round is still uploading")
        return dg.RunRequest(
            run_config=dg.RunConfig(ops={"demo__edge_fleet": FleetConfig(rows_per_node=300)}),
        )

    return edge_fleet_sensor
