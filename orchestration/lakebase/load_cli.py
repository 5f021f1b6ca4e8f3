"""`lakebase-load`: the dashboard query mix against the synced tables, from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestration.lakebase.load import MIX, LoadMixError, dashboard_load
from orchestration.lakebase.postgres import Lakebase
from orchestration.output import write_json
from orchestration.settings import ConfigurationError, environment_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lakebase-load",
        description="Run the weighted dashboard query mix with N concurrent clients against "
        "the synced tables (LAKEBASE_DSN, or the embedded server) and report QPS and latency.",
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent connections (8)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to run (10)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the query mix")
    parser.add_argument("--mix", type=Path, default=MIX, help="query weights (YAML)")
    parser.add_argument("--schema", help="schema of the synced tables (the environment's)")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0:
        parser.error("--clients must be >= 1 and --seconds > 0")
    try:
        schema = args.schema or environment_settings().schema
    except ConfigurationError as exc:
        parser.error(str(exc))
    lakebase = Lakebase()
    print(f"{args.clients} clients, {args.seconds:g} s, schema {schema}, mix {args.mix}")
    try:
        result = dashboard_load(
            lakebase.new_connection, schema, args.clients, args.seconds, args.seed, args.mix
        )
    except LoadMixError as exc:
        parser.error(str(exc))
    print(result.markdown())
    print(f"{result.queries:,} queries in {result.seconds:.1f} s = {result.qps:,.1f} QPS, "
          f"{result.errors} errors")  # fmt: skip
    path = write_json("query_load", result.as_dict())
    print(f"report: {path}")
    for q in result.per_query:
        if q.first_error:
            print(f"  {q.name} failed {q.errors}x, first: {q.first_error}")
    return 1 if result.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
