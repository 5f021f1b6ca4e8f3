"""A load test for the synced tables: a weighted mix of the converted dashboard queries, run by
N concurrent clients against Postgres, reported as QPS and latency percentiles.

    uv run lakebase-load --clients 8 --seconds 10

Each client has its own connection (read-only session, the synced tables' schema first on the
search path) and picks its next query at random by weight (seeded: the same mix every run).
Clients connect before the clock starts; only queries are timed.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import yaml
from psycopg import sql

from orchestration.lakebase.convert import convert_folder
from orchestration.output import markdown_table

MIX = Path(__file__).with_name("queries") / "load_mix.yaml"


class LoadMixError(ValueError):
    """The weights file names a query that does not exist or gives a weight that is not one."""


def load_mix(path: Path, available: set[str]) -> dict[str, int]:
    """Query name -> weight, from `path`; every name must be an available query."""
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise LoadMixError(f"{path}: expected 'query_name: weight' lines")
    mix: dict[str, int] = {}
    for name, weight in raw.items():
        if name not in available:
            raise LoadMixError(
                f"{path}: no query named {name!r} (there are: {', '.join(sorted(available))})"
            )
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            raise LoadMixError(f"{path}: weight of {name} must be a whole number >= 0")
        mix[name] = weight
    if not any(mix.values()):
        raise LoadMixError(f"{path}: every weight is 0; nothing to run")
    return {name: weight for name, weight in mix.items() if weight}


@dataclass
class QueryStats:
    name: str
    weight: int
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None

    def percentile(self, p: int) -> float | None:
        return percentile(self.latencies_ms, p)


@dataclass
class LoadResult:
    clients: int
    seconds: float  # measured wall time of the load
    per_query: list[QueryStats]

    @property
    def latencies_ms(self) -> list[float]:
        return [ms for q in self.per_query for ms in q.latencies_ms]

    @property
    def queries(self) -> int:
        return sum(len(q.latencies_ms) for q in self.per_query)

    @property
    def errors(self) -> int:
        return sum(q.errors for q in self.per_query)

    @property
    def qps(self) -> float:
        return self.queries / self.seconds if self.seconds else 0.0

    def percentile(self, p: int) -> float | None:
        return percentile(self.latencies_ms, p)

    def markdown(self) -> str:
        """Per query and in total: weight, queries, errors, p50/p95/p99 in ms."""
        rows = [
            [q.name, q.weight, len(q.latencies_ms), q.errors,
             *(_shown(q.percentile(p)) for p in (50, 95, 99))]
            for q in self.per_query
        ]  # fmt: skip
        rows.append(["**all**", "", self.queries, self.errors,
                     *(_shown(self.percentile(p)) for p in (50, 95, 99))])  # fmt: skip
        return markdown_table(
            ["query", "weight", "queries", "errors", "p50 ms", "p95 ms", "p99 ms"], rows
        )

    def as_dict(self) -> dict:
        def stats(latencies: list[float]) -> dict:
            return {f"p{p}_ms": _round(percentile(latencies, p)) for p in (50, 95, 99)}

        return {
            "clients": self.clients,
            "seconds": round(self.seconds, 3),
            "queries": self.queries,
            "errors": self.errors,
            "qps": round(self.qps, 1),
            **stats(self.latencies_ms),
            "per_query": [
                {
                    "name": q.name,
                    "weight": q.weight,
                    "queries": len(q.latencies_ms),
                    "errors": q.errors,
                    "first_error": q.first_error,
                    **stats(q.latencies_ms),
                }
                for q in self.per_query
            ],
        }


def dashboard_load(
    connect: Callable[[], psycopg.Connection],
    schema: str,
    clients: int,
    seconds: float,
    seed: int = 0,
    mix_path: Path = MIX,
) -> LoadResult:
    """The dashboard queries, converted to Postgres, in the mix of `mix_path`."""
    conversions = convert_folder()
    queries = {c.name: c.postgres for c in conversions if c.postgres is not None}
    mix = load_mix(mix_path, set(queries))
    return run_load(connect, queries, mix, schema, clients, seconds, seed)


def percentile(values: list[float], p: int) -> float | None:
    """The p-th percentile (inclusive method); None without values."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def run_load(
    connect: Callable[[], psycopg.Connection],
    queries: dict[str, str],
    mix: dict[str, int],
    schema: str,
    clients: int,
    seconds: float,
    seed: int = 0,
) -> LoadResult:
    """`clients` threads run queries from `mix` (name -> weight) for `seconds`."""
    if clients < 1 or seconds <= 0:
        raise ValueError("clients must be >= 1 and seconds > 0")
    names = list(mix)
    weights = [mix[n] for n in names]
    per_query = {n: QueryStats(n, mix[n]) for n in names}
    lock = threading.Lock()
    clock: list[float] = []  # the start, set once every client is connected
    ready = threading.Barrier(clients + 1, action=lambda: clock.append(time.perf_counter()))
    failures: list[BaseException] = []

    def client(index: int) -> None:
        pick = random.Random(seed * 1000 + index)
        try:
            conn = _session(connect, schema)
        except BaseException as exc:
            failures.append(exc)
            ready.abort()
            return
        with conn:
            try:
                ready.wait()
            except threading.BrokenBarrierError:
                return
            local: list[tuple[str, float | None, str | None]] = []
            deadline = clock[0] + seconds
            while time.perf_counter() < deadline:
                name = pick.choices(names, weights)[0]
                started = time.perf_counter()
                try:
                    conn.execute(queries[name].encode()).fetchall()
                    local.append((name, (time.perf_counter() - started) * 1000, None))
                except psycopg.Error as exc:
                    local.append((name, None, str(exc).splitlines()[0][:300]))
                    if conn.closed:
                        break
        with lock:
            for name, ms, error in local:
                stats = per_query[name]
                if ms is not None:
                    stats.latencies_ms.append(ms)
                else:
                    stats.errors += 1
                    stats.first_error = stats.first_error or error

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    try:
        ready.wait()
    except threading.BrokenBarrierError:
        for thread in threads:
            thread.join()
        raise RuntimeError(f"a load client could not connect: {failures[0]!r}") from failures[0]
    for thread in threads:
        thread.join()
    return LoadResult(clients, time.perf_counter() - clock[0], list(per_query.values()))


def _session(connect: Callable[[], psycopg.Connection], schema: str) -> psycopg.Connection:
    conn = connect()
    conn.autocommit = True
    conn.execute("SET default_transaction_read_only = on")
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    return conn


def _shown(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
