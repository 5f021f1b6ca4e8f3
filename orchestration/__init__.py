"""Dagster code for the edge-to-lakehouse platform: assets, resources, sensors, schedules."""

import warnings

from dagster import BetaWarning, PreviewWarning

# Beta APIs this project uses on purpose, said once here instead of on every import:
# - `backfill_policy=BackfillPolicy.single_run()` on bronze, silver and gold: a backfill of many
#   hours is one run (one DuckDB transaction, one Databricks job run), not one per hour.
# - `MultiToSingleDimensionPartitionMapping`: a silver hour depends on that hour of every
#   region's regional bronze partition.
warnings.filterwarnings(
    "ignore",
    message=r".*(`backfill_policy`|`MultiToSingleDimensionPartitionMapping`).*",
    category=BetaWarning,
)
# Preview API used on purpose: `partitions_def` on silver's AssetCheckSpecs, so each hour's
# expectations are evaluated and shown per partition, as Lakeflow users expect.
warnings.filterwarnings(
    "ignore", message=r".*partitions_def on an AssetCheckSpec.*", category=PreviewWarning
)
# dagster-databricks' own Pipes clients call preview and deprecated Dagster internals on every
# run; nothing in this project's code can act on those warnings.
warnings.filterwarnings("ignore", category=PreviewWarning, module=r"dagster(_databricks)?\.")
warnings.filterwarnings(
    "ignore",
    message=r"AssetExecutionContext\.(run_id|dagster_run) is deprecated",
    category=DeprecationWarning,
)
