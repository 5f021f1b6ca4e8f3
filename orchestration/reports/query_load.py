"""`reports/query_load`: the dashboard query mix under N concurrent clients (QPS, latency)."""

import dagster as dg
from pydantic import Field

from orchestration.lakebase.load import dashboard_load
from orchestration.lakebase.postgres import Lakebase
from orchestration.lakebase.workload import synced_asset_keys
from orchestration.output import bar_chart, write_json
from orchestration.warehouse import Warehouse

SYNCED = synced_asset_keys()


class QueryLoadConfig(dg.Config):
    clients: int = Field(default=4, ge=1, le=64, description="concurrent connections")
    seconds: float = Field(default=5.0, gt=0, le=600, description="how long the load runs")
    seed: int = Field(default=0, description="random seed of the weighted query mix")


@dg.asset(
    key=["reports", "query_load"],
    deps=SYNCED,
    group_name="reports",
    kinds={"postgres"},
    description="Runs the weighted dashboard query mix (queries/load_mix.yaml) with N clients "
    "against the synced tables; QPS and p50/p95/p99 latency. On demand, not in the daily job.",
)
def query_load(
    context: dg.AssetExecutionContext,
    config: QueryLoadConfig,
    lakebase: Lakebase,
    warehouse: Warehouse,
) -> dg.MaterializeResult:
    schema = warehouse.settings().schema
    result = dashboard_load(
        lakebase.new_connection, schema, config.clients, config.seconds, config.seed
    )
    path = write_json("query_load", result.as_dict())
    context.log.info(
        f"{result.queries} queries, {result.qps:.1f} QPS, p95 {result.percentile(95)} ms"
    )
    p95 = {q.name: q.percentile(95) or 0.0 for q in result.per_query}
    metadata = {
        "clients": result.clients,
        "qps": round(result.qps, 1),
        "queries": result.queries,
        "errors": result.errors,
        **{f"p{p}_ms": round(result.percentile(p) or 0.0, 2) for p in (50, 95, 99)},
        "per_query": dg.MetadataValue.md(result.markdown()),
        "p95_by_query": dg.MetadataValue.md(bar_chart(p95, unit=" ms")),
        "report_json": dg.MetadataValue.path(str(path)),
    }
    if result.errors:
        failed = "; ".join(f"{q.name}: {q.first_error}" for q in result.per_query if q.errors)
        raise dg.Failure(
            description=f"{result.errors} queries failed under load ({failed})", metadata=metadata
        )
    return dg.MaterializeResult(metadata=metadata)
