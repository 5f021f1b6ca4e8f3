"""`lakehouse-databricks-plan`: what the Databricks engine would run, without a workspace.

    uv run --group databricks lakehouse-databricks-plan --start 2026-11-25-10:00 \
        --end 2026-11-25-12:00

Prints, for the partition range, the job specification each asset submits (one run per asset
for the whole range), the generated Databricks SQL and write specs, and the SDK calls a run
makes. Nothing is sent anywhere.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta

from orchestration.databricks import plan
from orchestration.databricks.workspace import job_script_path, submit_args, submit_task
from orchestration.settings import ConfigurationError, environment_settings
from orchestration.transforms.gold import GOLD_TABLES

PARTITION_FORMAT = "%Y-%m-%d-%H:%M"


def _hour(text: str) -> datetime:
    try:
        return datetime.strptime(text, PARTITION_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        message = f"{text!r} is not an hour key like 2026-11-25-10:00"
        raise argparse.ArgumentTypeError(message) from None


def sdk_calls(volume: str) -> list[str]:
    """The databricks-sdk calls one asset's run makes, in order (Pipes client included)."""
    return [
        f"files.download({job_script_path(volume)!r})  # its sha256; upload if absent or different",
        f"files.create_directory('{volume}/tmp/<random>')  # Pipes context",  # noqa: S108
        "files.upload(<context dir>/context.json)",
        f"files.create_directory('{volume}/tmp/<random>')  # Pipes messages",  # noqa: S108
        "jobs.submit(run_name, tasks=[task], environments, idempotency_token, timeout_seconds)",
        "jobs.get_run(run_id)  # every poll_interval_seconds until TERMINATED",
        "files.list_directory_contents / files.download(<messages dir>/<n>.json)  # messages",
        "jobs.get_run(run_id)  # the run page URL for the materialization",
        "files.list_directory_contents / files.delete / files.delete_directory  # cleanup",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--start", type=_hour, required=True, help="first hour, e.g. 2026-11-25-10:00"
    )
    parser.add_argument("--end", type=_hour, help="last hour, inclusive (default: --start)")
    parser.add_argument("--env", default="databricks", help="environment (environments.yaml)")
    args = parser.parse_args(argv)
    try:
        settings = environment_settings(args.env)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if settings.databricks is None:
        print(f"error: environment {args.env} has no databricks: block", file=sys.stderr)
        return 2
    start, end = args.start, (args.end or args.start) + timedelta(hours=1)
    workspace = settings.databricks
    steps = {
        "silver/sensor_readings": ("silver", plan.silver_extras(settings, start, end)),
        **{
            f"gold/{g.entity}": ("gold", plan.hourly_gold_extras(settings, g, start, end))
            for g in GOLD_TABLES
        },
        "gold/fleet_health": ("gold", plan.fleet_health_extras(settings)),
    }
    hours = int((end - start) / timedelta(hours=1))
    print(f"# environment {settings.name}: {hours} hour(s), one Databricks job run per asset\n")
    for asset, (step, extras) in steps.items():
        print(f"## {asset}")
        task = submit_task(step, asset, workspace)
        idempotency = "<sha256 of dagster run id, asset, step and attempt>"
        spec = {"task": task, **submit_args(workspace, f"lakehouse {step} {asset}", idempotency)}
        print("job specification:\n" + json.dumps(spec, indent=1))
        print("extras (Pipes):\n" + json.dumps(extras, indent=1) + "\n")
    print("## databricks-sdk calls per asset run")
    print("\n".join(f"- {call}" for call in sdk_calls(workspace.volume)))
    print("\nbronze/<scenario>: the same, with the exact object list of the hours (key, size, "
          "SHA-256 and rows from each sidecar) as listed in S3 when the run starts.")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
