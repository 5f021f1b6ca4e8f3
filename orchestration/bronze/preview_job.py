"""`landing_preview_job` and `lakehouse-preview`: what a landing source would load, read-only."""

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta

import dagster as dg
import duckdb
from pydantic import Field

from edge_agent.contract import SCENARIOS, partition_hour
from orchestration.bronze.loader import data_schema
from orchestration.bronze.preview import Preview, hours_between, hours_under_prefix, preview
from orchestration.output import markdown_table, table_preview
from orchestration.resources import LandingZone
from orchestration.settings import ConfigurationError, configured_for, environment_settings
from orchestration.warehouse import Warehouse


class PreviewConfig(dg.Config):
    scenario: str = Field(description=f"one of {', '.join(SCENARIOS)}")
    bucket: str | None = Field(
        default=None, description="a bucket to preview instead of the scenario's own"
    )
    prefix: str | None = Field(
        default=None,
        description="preview the hours of the keys under this prefix (e.g. year=2026/month=11/) "
        "instead of an hour range",
    )
    start_hour: str | None = Field(default=None, description="first hour; default 24 h ago")
    end_hour: str | None = Field(default=None, description="last hour; default this hour")
    sample_size: int = Field(default=3, ge=1, le=50, description="objects downloaded")


def run_preview(config: PreviewConfig, landing: LandingZone, warehouse: Warehouse) -> Preview:
    if config.scenario not in SCENARIOS:
        raise ConfigurationError(
            f"scenario {config.scenario!r} is not one of {', '.join(SCENARIOS)}"
        )
    now = datetime.now(UTC)
    try:
        end = partition_hour(config.end_hour) if config.end_hour else now
        start = partition_hour(config.start_hour) if config.start_hour else now - timedelta(1)
    except ValueError as exc:
        raise ConfigurationError(
            f"hours are partition keys like 2026-11-23-09:00 ({exc})"
        ) from None
    if end < start or end - start > timedelta(days=31):
        raise ConfigurationError("the hour range must be forward and at most 31 days")
    buckets = [config.bucket] if config.bucket else landing.buckets()[config.scenario]
    client = landing.client()
    if config.prefix:
        hours = hours_under_prefix(client, buckets, config.prefix)
    else:
        hours = hours_between(start, end)
    current = None
    if warehouse.path().exists():
        with warehouse.connect(read_only=True) as conn:  # read-only: nothing can be written
            try:
                current = data_schema(conn, f"bronze_{config.scenario}")
            except duckdb.Error:
                current = None
    limits = warehouse.settings().landing_limits
    return preview(client, buckets, hours, current, config.sample_size, limits)


@dg.op(
    description="Lists what discovery would request, samples objects, compares their schema "
    "with bronze's and estimates a full load. Writes nothing, moves no cursor.",
    tags={"kind": "preview"},
)
def preview_landing(
    context: dg.OpExecutionContext, config: PreviewConfig, landing: LandingZone,
    warehouse: Warehouse,
) -> dg.Output[None]:  # fmt: skip
    result = run_preview(config, landing, warehouse)
    summary = result.summary()
    context.log.info(json.dumps(summary, default=str))
    modes = summary.get("schema_modes", {})
    metadata: dict[str, object] = {
        **{k: v for k, v in summary.items() if isinstance(v, int | float | str)},
        "summary": dg.MetadataValue.json(summary),
        "schema_modes": dg.MetadataValue.md(
            markdown_table(["mode", "what it would do"], [[m, w] for m, w in modes.items()])
        ),
    }
    if result.first_rows.height:
        metadata["first_rows"] = table_preview(result.first_rows)
    return dg.Output(None, metadata=metadata)


@dg.job(description="Preview a landing source before turning its sensor on (read-only).")
def landing_preview_job() -> None:
    preview_landing()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lakehouse-preview", description=__doc__)
    parser.add_argument("scenario", help=", ".join(SCENARIOS))
    parser.add_argument("--bucket", help="a bucket to preview instead of the scenario's own")
    parser.add_argument("--prefix", help="the hours of the keys under this prefix, instead")
    parser.add_argument("--start-hour", help="first hour (2026-11-23-09:00); default 24 h ago")
    parser.add_argument("--end-hour", help="last hour; default this hour")
    parser.add_argument("--sample", type=int, default=3, help="objects to download (3)")
    parser.add_argument("--bucket-prefix", default="edge", help="landing bucket prefix (edge)")
    args = parser.parse_args(argv)
    try:
        config = PreviewConfig(
            scenario=args.scenario, bucket=args.bucket, prefix=args.prefix,
            start_hour=args.start_hour,
            end_hour=args.end_hour, sample_size=args.sample,
        )  # fmt: skip
        settings = environment_settings()  # LAKEHOUSE_ENV, once, for this command
        landing = LandingZone.for_environment(settings, bucket_prefix=args.bucket_prefix)
        warehouse = configured_for(Warehouse, {"environment": settings.name})
        result = run_preview(config, landing, warehouse)
    except (ConfigurationError, ValueError) as exc:
        print(f"lakehouse-preview: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    print(json.dumps(result.summary(), indent=1, default=str))
    if result.first_rows.height:
        print(result.first_rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
