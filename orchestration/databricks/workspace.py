"""The Databricks workspace resource: submits one lakehouse job step per asset per Dagster run.

Credentials are read when a run needs them (`dg.EnvVar`), so definitions load without any.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import dagster as dg

from orchestration.settings import (
    DatabricksWorkspace,
    EnvironmentSettings,
    configured_for,
    environment_settings,
)

JOB_SCRIPT = Path(__file__).with_name("job") / "lakehouse_job.py"
ENVIRONMENT_KEY = "lakehouse"


def job_script_path(volume: str) -> str:
    """Where the job's code lives in the Volume: named by its content, verified before each run."""
    return f"{volume}/code/lakehouse_job-{_sha256(JOB_SCRIPT.read_bytes())[:12]}.py"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def submit_task(step: str, asset: str, workspace: DatabricksWorkspace) -> dict[str, Any]:
    """The Jobs API task for one step: serverless (environment) or a classic job cluster."""
    task: dict[str, Any] = {
        "task_key": f"{step}-{asset.replace('/', '-')}"[:100],
        "spark_python_task": {"python_file": job_script_path(workspace.volume), "parameters": []},
    }
    if workspace.compute.kind == "serverless":
        task["environment_key"] = ENVIRONMENT_KEY
    else:
        task["new_cluster"] = dict(workspace.compute.new_cluster or {})
        task["libraries"] = [{"pypi": {"package": d}} for d in workspace.compute.dependencies]
    return task


def submit_args(
    workspace: DatabricksWorkspace, run_name: str, idempotency_token: str
) -> dict[str, Any]:
    args: dict[str, Any] = {
        "run_name": run_name,
        "timeout_seconds": workspace.timeout_seconds,
        # A retried Dagster step finds the run it already submitted instead of starting another.
        "idempotency_token": idempotency_token,
    }
    if workspace.compute.kind == "serverless":
        args["environments"] = [
            {
                "environment_key": ENVIRONMENT_KEY,
                "spec": {
                    "client": workspace.compute.environment_version,
                    "dependencies": list(workspace.compute.dependencies),
                },
            }
        ]
    return args


class Databricks(dg.ConfigurableResource):
    """A Databricks workspace reached with a token; the environment says which catalog,
    schema, Volume and compute (environments.yaml)."""

    host: str
    token: str
    message_interval_seconds: float = 2.0  # how often Pipes messages are read from the Volume
    poll_interval_seconds: float | None = None  # run state polling (default: the environment's)
    environment: str = "databricks"  # whose workspace settings (environments.yaml)

    def settings(self) -> DatabricksWorkspace:
        workspace = environment_settings(self.environment).databricks
        if workspace is None:
            raise dg.Failure(
                description="this environment has no databricks: block in environments.yaml",
                allow_retries=False,
            )
        return workspace

    def client(self) -> Any:
        from databricks.sdk import WorkspaceClient

        return WorkspaceClient(host=self.host, token=self.token, auth_type="pat")

    def ensure_job_script(self, client: Any) -> str:
        """The Volume holds exactly this version of the job's code: its hash is checked before
        every run, and a file that differs (edited or truncated in the Volume, a half-finished
        upload) is replaced and checked again; if it still differs, the run is refused."""
        from databricks.sdk.errors import NotFound

        script = JOB_SCRIPT.read_bytes()
        path = job_script_path(self.settings().volume)

        def remote_digest() -> str | None:
            try:
                return _sha256(client.files.download(path).contents.read())
            except NotFound:
                return None

        found = remote_digest()
        if found == _sha256(script):
            return path
        if found is not None:
            dg.get_dagster_logger().warning(
                f"{path} is not this job's code (sha256 {found[:12]}): replacing it"
            )
        client.files.upload(path, io.BytesIO(script), overwrite=True)
        if remote_digest() != _sha256(script):
            raise dg.Failure(
                description=f"the job script at {path} does not match this version after "
                "upload (another writer?): refusing to run it",
                allow_retries=True,
            )
        return path

    def _pipes_client(self, client: Any, workspace: DatabricksWorkspace) -> Any:
        """Serverless: messages through the Volume. Classic job clusters: through DBFS."""
        from dagster_databricks import PipesDatabricksClient
        from dagster_databricks.pipes import (
            PipesDatabricksServerlessClient,
            PipesDbfsMessageReader,
            PipesUnityCatalogVolumesMessageReader,
        )

        poll = self.poll_interval_seconds or workspace.poll_interval_seconds
        if workspace.compute.kind == "cluster":
            reader = PipesDbfsMessageReader(client=client, interval=self.message_interval_seconds)
            return PipesDatabricksClient(
                client=client, poll_interval_seconds=poll, message_reader=reader
            )
        return PipesDatabricksServerlessClient(
            client=client,
            volume_path=workspace.volume,
            poll_interval_seconds=poll,
            message_reader=PipesUnityCatalogVolumesMessageReader(
                client=client, volume_path=workspace.volume, interval=self.message_interval_seconds
            ),
        )

    def run_step(
        self, context: dg.AssetExecutionContext, step: str, extras: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Run one step as one Databricks job run; returns the job's figures and the run's
        metadata (its URL). Fails, with the job's last lines, if the run does not succeed."""
        from databricks.sdk.service import jobs

        workspace = self.settings()
        client = self.client()
        self.ensure_job_script(client)
        asset = context.assets_def.key.to_user_string()
        # The same submit, resent by the SDK after a lost response, finds the run it started; a
        # retried step (new attempt) starts a new run: Pipes reads each attempt's own messages,
        # and every write replaces its partitions, so a rerun never duplicates data.
        attempt = f"{context.run.run_id}:{asset}:{step}:{context.retry_number}"
        token = hashlib.sha256(attempt.encode()).hexdigest()[:64]
        submits = _SubmitRecorder(client)
        pipes = self._pipes_client(submits, workspace)
        run_name = f"lakehouse {step} {asset} ({context.run.run_id[:8]})"
        try:
            invocation = pipes.run(
                context=context,
                extras=extras,
                task=jobs.SubmitTask.from_dict(submit_task(step, asset, workspace)),
                submit_args=_sdk_submit_args(submit_args(workspace, run_name, token)),
            )
        except (dg.DagsterExecutionInterruptedError, KeyboardInterrupt):
            # Stopped while the submit was on its way: dagster-databricks cancels only a run it
            # has started polling. The same submit with the same idempotency token names the run
            # the first one started (or starts one, cancelled at once): cancel it.
            if submits.sent is not None and submits.run_id is None:
                _cancel_submitted(context, client, submits.sent)
            raise
        run_id = invocation.metadata["Databricks Job Run ID"]
        run_id = int(getattr(run_id, "value", run_id))
        run = client.jobs.get_run(run_id)
        if run.state and run.state.result_state and run.state.result_state.value == "CANCELED":
            # Interrupted while polling or reading messages: dagster-databricks cancelled it.
            raise dg.Failure(
                description=f"Databricks run {run_id} for {asset} was canceled",
                allow_retries=False,
            )
        messages = invocation.get_custom_messages()
        if not messages:  # the run succeeded but its report was not read: never guess figures
            raise dg.Failure(
                description=f"Databricks run for {asset} succeeded but its report did not arrive "
                "through Pipes; its writes are idempotent, so the step can be retried"
            )
        return messages[-1], run_metadata(run)


def _cancel_submitted(context: Any, client: Any, sent: dict[str, Any]) -> None:
    try:
        run_id = client.jobs.submit(**sent).bind()["run_id"]
        context.log.info(f"interrupted: canceling Databricks job run {run_id}")
        client.jobs.cancel_run(run_id)
    except Exception as exc:  # the interrupt stays what the step reports
        context.log.error(
            f"interrupted during submit, and the run could not be canceled ({exc}): cancel "
            f"runs named {sent.get('run_name')!r} in the workspace"
        )


class _SubmitRecorder:
    """The workspace client, noting the job submit it sends (its arguments carry the
    idempotency token) before sending it, and the run id once the reply arrives."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.sent: dict[str, Any] | None = None
        self.run_id: int | None = None
        recorder = self

        class Jobs:
            def submit(self, **kwargs: Any) -> Any:
                recorder.sent = kwargs
                waiter = client.jobs.submit(**kwargs)
                recorder.run_id = waiter.bind()["run_id"]
                return waiter

            def __getattr__(self, name: str) -> Any:
                return getattr(client.jobs, name)

        self.jobs = Jobs()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def run_metadata(run: Any) -> dict[str, Any]:
    """What a materialization records of its Databricks job run: id, link and duration (the
    pipeline cost report prices the duration as compute)."""
    seconds = (run.run_duration or 0) / 1000
    if not seconds and run.end_time and run.start_time:
        seconds = (run.end_time - run.start_time) / 1000
    metadata: dict[str, Any] = {
        "databricks_run_id": str(run.run_id),
        "databricks_run_seconds": round(seconds, 3),
    }
    if run.run_page_url:
        metadata["databricks_run_url"] = dg.MetadataValue.url(run.run_page_url)
    return metadata


def _sdk_submit_args(args: dict[str, Any]) -> dict[str, Any]:
    from databricks.sdk.service import jobs

    out = dict(args)
    if "environments" in out:
        out["environments"] = [jobs.JobEnvironment.from_dict(e) for e in out["environments"]]
    return out


def databricks_resource(settings: EnvironmentSettings) -> Databricks:
    """The resource as definitions declare it: host and token from the environment at run time."""
    workspace = settings.databricks
    host_env = workspace.host_env if workspace else "DATABRICKS_HOST"
    token_env = workspace.token_env if workspace else "DATABRICKS_TOKEN"
    return configured_for(
        Databricks,
        {"environment": settings.name},
        host=dg.EnvVar(host_env),
        token=dg.EnvVar(token_env),
    )
