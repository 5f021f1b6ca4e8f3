"""`edge-agent`: simulate a node, manage its pipeline type, upload, create landing buckets,
requeue reports Dagster refused."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from edge_agent import __version__
from edge_agent.batches import BatchContext
from edge_agent.config import AgentConfig, load_config
from edge_agent.contract import SCENARIOS, landing_bucket_for, validate_region, validate_scenario
from edge_agent.control import ControlStore
from edge_agent.database import NodeDatabase
from edge_agent.errors import EXIT_FAILURE, EXIT_USAGE, AgentError, ConfigError
from edge_agent.region import detect_region
from edge_agent.reporting import HttpReporter, PipesReporter, Reporter
from edge_agent.secrets import RedactingFilter, redact, redact_url
from edge_agent.simulate import SimulationSpec, simulate
from edge_agent.source import resolve_table
from edge_agent.storage import BucketPolicy, ObjectStore, ensure_buckets, s3_client, s3_session
from edge_agent.uploader import CycleSummary, Uploader, run_forever

log = logging.getLogger("edge_agent")


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as for every other usage error
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, help="node SQLite database (env EDGE_AGENT_DB)")
    parser.add_argument("--config", type=Path, help="YAML settings (env EDGE_AGENT_CONFIG)")


def _destination(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bucket-prefix", help="bucket names start with this (default: edge)")
    parser.add_argument("--default-region", help="region when none is detected")
    parser.add_argument("--lakehouse-region", help="region of the scenario buckets")
    parser.add_argument("--s3-endpoint-url", help="S3-compatible endpoint (env AWS_ENDPOINT_URL)")


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(prog="edge-agent", description=__doc__)
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_ArgumentParser)

    sim = commands.add_parser("simulate", help="append simulated sensor readings to a database")
    sim.add_argument("--db", type=Path, required=True)
    sim.add_argument("--rows", type=int, required=True)
    sim.add_argument("--sensors", type=int, default=4)
    sim.add_argument("--node-id", default="node-1")
    sim.add_argument("--end", type=datetime.fromisoformat, help="last reading time (default now)")
    sim.add_argument("--interval-seconds", type=float, default=1.0)
    sim.add_argument("--anomaly-probability", type=float, default=0.01)
    sim.add_argument("--clock-skew-seconds", type=float, default=0.0)
    sim.add_argument("--late-fraction", type=float, default=0.0)
    sim.add_argument("--late-by-seconds", type=float, default=6 * 3600.0)
    sim.add_argument("--invalid-fraction", type=float, default=0.0)
    sim.add_argument("--seed", type=int)

    pipeline = commands.add_parser("pipeline", help="the node's pipeline type")
    actions = pipeline.add_subparsers(dest="action", required=True, parser_class=_ArgumentParser)
    _common(actions.add_parser("get", help="show the current pipeline type"))
    set_parser = actions.add_parser("set", help="change the pipeline type")
    set_parser.add_argument("pipeline_type", metavar="TYPE", help=" | ".join(SCENARIOS))
    set_parser.add_argument("--by", default=None, help="who changes it (default: current user)")
    _common(set_parser)
    history = actions.add_parser("history", help="recent upload executions")
    history.add_argument("--limit", type=int, default=10)
    _common(history)

    upload = commands.add_parser("upload", help="upload new rows to S3")
    _common(upload)
    _destination(upload)
    upload.add_argument("--once", action="store_true", help="upload the backlog and exit")
    upload.add_argument("--interval", dest="interval_seconds", type=float)
    upload.add_argument("--node-id")
    upload.add_argument("--region", help="the node's region (default: detected)")
    upload.add_argument("--table")
    upload.add_argument("--timestamp-column")
    upload.add_argument("--batch-rows", type=int)
    upload.add_argument("--workers", type=int)
    upload.add_argument("--dagster-url", help="report uploads to this Dagster webserver")
    upload.add_argument(
        "--report-max-attempts",
        type=int,
        help="refusals (HTTP 4xx) before a report is dead-lettered (default: 5)",
    )

    status = commands.add_parser("status", help="watermark, backlog, queued and dead reports")
    _common(status)

    reports = commands.add_parser("reports", help="reports for Dagster")
    report_actions = reports.add_subparsers(
        dest="action", required=True, parser_class=_ArgumentParser
    )
    requeue = report_actions.add_parser("requeue", help="queue dead-lettered reports again")
    requeue.add_argument("ids", metavar="ID", type=int, nargs="*", help="report ids (default: all)")
    _common(requeue)

    buckets = commands.add_parser("buckets", help="landing buckets")
    bucket_actions = buckets.add_subparsers(
        dest="action", required=True, parser_class=_ArgumentParser
    )
    create = bucket_actions.add_parser("create", help="create the landing buckets (idempotent)")
    create.add_argument("--config", type=Path)
    _destination(create)
    create.add_argument(
        "--regions", default="", help="comma-separated regions that get a regional bucket"
    )
    return parser


def _config(args: argparse.Namespace, need_db: bool = True) -> AgentConfig:
    cli = {k: v for k, v in vars(args).items() if k not in ("config", "command", "action")}
    config = load_config(cli, config_file=args.config)
    return config.validated() if need_db else config


def _store(config: AgentConfig) -> ControlStore:
    assert config.db is not None
    return ControlStore(NodeDatabase(Path(config.db)))


def cmd_simulate(args: argparse.Namespace) -> int:
    if args.rows < 0 or args.sensors < 1:
        raise ConfigError("--rows must be >= 0 and --sensors >= 1")
    spec = SimulationSpec(
        rows=args.rows,
        sensors=args.sensors,
        node_id=args.node_id,
        end=args.end,
        interval_seconds=args.interval_seconds,
        anomaly_probability=args.anomaly_probability,
        clock_skew_seconds=args.clock_skew_seconds,
        late_fraction=args.late_fraction,
        late_by_seconds=args.late_by_seconds,
        invalid_fraction=args.invalid_fraction,
        seed=args.seed,
    )
    written = simulate(args.db, spec)
    print(f"wrote {written} readings from {args.sensors} sensors to {args.db}")
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    config = _config(args)
    if args.action == "set":
        validate_scenario(args.pipeline_type)  # before touching the database
        with _store(config) as store:
            setting = store.set_pipeline(args.pipeline_type, args.by or getpass.getuser())
        print(f"pipeline type is now {setting.pipeline_type} (by {setting.updated_by})")
        return 0
    with _store(config) as store:
        return _show_pipeline(store, args)


def _show_pipeline(store: ControlStore, args: argparse.Namespace) -> int:
    if args.action == "get":
        setting = store.get_pipeline()
        if setting.is_default:
            print(f"{setting.pipeline_type} (default; never set)")
        else:
            print(f"{setting.pipeline_type} (set {setting.updated_at} by {setting.updated_by})")
        return 0
    rows = store.history(args.limit)
    if not rows:
        print("no executions yet")
    for e in rows:
        line = (
            f"#{e.id} {e.started_at} {e.status:<7} {e.pipeline_type:<11} read={e.rows_read} "
            f"uploaded={e.rows_uploaded} rejected={e.rows_rejected} objects={e.objects_written}"
        )
        print(line + (f" error: {e.error}" if e.error else ""))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    config = _config(args)
    with _store(config) as store:
        return _show_status(store, config)


def _show_status(store: ControlStore, config: AgentConfig) -> int:
    source = resolve_table(store.db, config.table, config.timestamp_column)
    print(f"pipeline type: {store.get_pipeline().pipeline_type}")
    print(f"table: {source.name} (key {source.key_column}, timestamp {source.timestamp_column})")
    print(f"watermark: {store.watermark(source.name)}")
    print(f"rows not yet uploaded: {store.backlog(source)}")
    print(f"reports queued for Dagster: {store.pending_reports()}")
    _show_dead_letters(store)
    return 0


_DEAD_LETTERS_SHOWN = 20


def _show_dead_letters(store: ControlStore) -> None:
    count = store.dead_letter_count()
    print(f"reports dead-lettered (refused by Dagster): {count}")
    shown = store.dead_letters(_DEAD_LETTERS_SHOWN)
    for letter in shown:
        print(
            f"  #{letter.id} {letter.asset_key} {letter.partition or '-'}: HTTP "
            f"{letter.last_status}, refused {letter.rejections} time(s), dead since "
            f"{letter.dead_at}: {redact(letter.last_error or '')}"
        )
    if count > len(shown):
        print(f"  ... and {count - len(shown)} more")
    if count:
        print("  'edge-agent reports requeue [ID ...]' queues them again")


def cmd_reports(args: argparse.Namespace) -> int:
    config = _config(args)
    with _store(config) as store:
        moved = store.requeue_dead_letters(args.ids or None)
    print(f"requeued {moved} report(s); the next upload cycle sends them")
    if args.ids and moved < len(set(args.ids)):
        raise AgentError("some of the reports named are not dead letters (see edge-agent status)")
    return 0


def _reporter(config: AgentConfig, pipes: Any) -> tuple[Reporter | None, str]:
    if pipes is not None:
        return PipesReporter(pipes), "via Dagster Pipes"
    if config.dagster_url:
        reporter = HttpReporter(
            config.dagster_url, config.dagster_token, config.report_timeout_seconds
        )
        return reporter, f"to {redact_url(config.dagster_url)}"
    return None, "off (no Dagster URL)"


def cmd_upload(args: argparse.Namespace, pipes: Any = None) -> int:
    config = _config(args)
    with _store(config) as store:
        return _upload(args, config, store, pipes)


def _upload(args: argparse.Namespace, config: AgentConfig, store: ControlStore, pipes: Any) -> int:
    source = resolve_table(store.db, config.table, config.timestamp_column)
    if not source.autoincrement:
        log.warning(
            "table %s has no AUTOINCREMENT: deleting its newest rows lets SQLite reuse their ids",
            source.name,
        )
    region, region_source = detect_region(
        config.region, os.environ, config.imds_endpoint, config.imds_timeout_seconds,
        config.default_region,
    )  # fmt: skip
    session, credential_source = s3_session(
        region, access_key_id=config.aws_access_key_id,
        secret_access_key=config.aws_secret_access_key,
    )  # fmt: skip
    client = s3_client(session, config.s3_endpoint_url, pool=config.workers * 2 + 2)
    objects = ObjectStore(client, config.s3_endpoint_url)
    reporter, reporting = _reporter(config, pipes)
    context = BatchContext(source, config.node_id, region, config.scenario, objects)
    uploader = Uploader(config, store, source, context, reporter)
    log.info(
        "edge-agent %s: node %s, region %s (%s), table %s (key %s, time %s), credentials: %s, "
        "reporting %s",
        __version__, config.node_id, region, region_source, source.name, source.key_column,
        source.timestamp_column, credential_source, reporting,
    )  # fmt: skip
    if args.once:
        _print_summary(uploader.run_cycle())
        return 0
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    run_forever(uploader, args.interval_seconds or config.interval_seconds, stop)
    return 0


def _print_summary(summary: CycleSummary) -> None:
    rate = summary.rows_read / summary.seconds if summary.seconds else 0.0
    log.info(
        "uploaded %s rows in %d object(s) (%.1f MB) in %.2fs (%s rows/s); rejected %d, "
        "removed by rules %d; watermark %d; reports delivered %d, queued %d, dead letters %d",
        f"{summary.rows_uploaded:,}", summary.objects, summary.bytes_written / 1e6,
        summary.seconds, f"{rate:,.0f}", summary.rows_rejected, summary.rows_removed,
        summary.watermark, summary.reports_delivered, summary.reports_pending,
        summary.reports_dead_letters,
    )  # fmt: skip


def cmd_buckets(args: argparse.Namespace) -> int:
    config = _config(args, need_db=False)
    home = validate_region(config.scenario_bucket_region)
    regions = [validate_region(r.strip()) for r in args.regions.split(",") if r.strip()]
    wanted = [
        (landing_bucket_for(s, config.bucket_prefix, home), home, s == "raw")
        for s in SCENARIOS
        if s != "regional"
    ]
    wanted += [(landing_bucket_for("regional", config.bucket_prefix, r), r, True) for r in regions]
    session, _ = s3_session(
        home, access_key_id=config.aws_access_key_id,
        secret_access_key=config.aws_secret_access_key,
    )  # fmt: skip
    client = s3_client(session, config.s3_endpoint_url)
    for name, state in ensure_buckets(client, wanted, BucketPolicy()):
        print(f"{state:<8} s3://{name}")
    return 0


class _PipesLogHandler(logging.Handler):
    def __init__(self, pipes: Any) -> None:
        super().__init__(logging.INFO)
        self.pipes = pipes

    def emit(self, record: logging.LogRecord) -> None:
        level = record.levelname.lower()
        getattr(self.pipes.log, level if level in ("info", "warning", "error") else "info")(
            redact(record.getMessage())
        )


def _setup_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter())
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "simulate":
        return cmd_simulate(args)
    if args.command == "pipeline":
        return cmd_pipeline(args)
    if args.command == "status":
        return cmd_status(args)
    if args.command == "buckets":
        return cmd_buckets(args)
    if args.command == "reports":
        return cmd_reports(args)
    from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes

    if not PipesEnvVarParamsLoader().is_dagster_pipes_process():
        return cmd_upload(args)
    with open_dagster_pipes() as pipes:
        handler = _PipesLogHandler(pipes)
        for existing in log.handlers:  # progress goes to Dagster; stderr keeps the problems
            existing.setLevel(logging.WARNING)
        log.addHandler(handler)
        try:
            return cmd_upload(args, pipes)
        finally:
            log.removeHandler(handler)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.quiet)
    try:
        return _dispatch(args)
    except AgentError as exc:
        print(f"edge-agent: error: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one line for the user; no traceback full of paths and values
        print(f"edge-agent: unexpected error: {type(exc).__name__}: {redact(str(exc))}"[:500],
              file=sys.stderr)  # fmt: skip
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
