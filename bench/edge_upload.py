"""Benchmark: SQLite backlog to objects in S3, agent vs naive pandas vs the SQLite scan ceiling.

    uv run python -m bench.edge_upload            # 2 M rows (+ 5 M-row memory run)
    uv run python -m bench.edge_upload --tiny     # seconds; what the test suite runs

Everything runs in one invocation on the same database, so the ratios compare like with like.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import boto3

from bench.services import moto_s3_server, run_measured, s3_env
from edge_agent.schema import SENSOR_COLUMNS
from edge_agent.simulate import SimulationSpec, simulate

CACHE = Path(__file__).parent / "results"


def database(rows: int, directory: Path) -> Path:
    """A simulated node database of `rows` readings, reused between runs."""
    path = directory / f"edge_bench_{rows}.db"
    if path.exists():
        with sqlite3.connect(path) as conn:
            if conn.execute("SELECT count(*) FROM sensor_readings").fetchone()[0] == rows:
                return path
        remove_database(path)
    print(f"generating {rows:,} rows into {path} ...", flush=True)
    simulate(path, SimulationSpec(rows=rows, sensors=8, seed=7))
    return path


def remove_database(path: Path) -> None:
    """A database and its WAL files: a stale WAL next to a new file corrupts it."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def fresh_copy(source: Path, target: Path) -> Path:
    """The agent records its watermark in the database, so each run starts from a copy."""
    remove_database(target)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return target


def scan_ceiling(db: Path, rows: int) -> float:
    """sqlite3 CLI loading every column of every row (count() of each column)."""
    columns = ", ".join(f'count("{name}")' for name, _ in SENSOR_COLUMNS)
    started = time.perf_counter()
    subprocess.run(
        ["sqlite3", str(db), f"SELECT {columns} FROM sensor_readings"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return rows / (time.perf_counter() - started)


def node_agent(workdir: Path) -> Path:
    """`edge-agent` as a node has it: the agent's wheel alone in a venv of its own (memory is
    measured without the lakehouse's packages loaded around it)."""
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        return Path(sys.executable).with_name("edge-agent")
    root, venv, dist = Path(__file__).resolve().parents[1], workdir / "node-venv", workdir / "dist"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_"))}
    shutil.rmtree(dist, ignore_errors=True)
    for command in (
        [uv, "build", "-q", "--package", "edge-agent", "--wheel", "-o", str(dist)],
        [uv, "venv", "-q", "--allow-existing", "--python", sys.executable, str(venv)],
    ):
        subprocess.run(command, cwd=root, env=clean, check=True)
    wheel = next(dist.glob("edge_agent-*.whl"))
    python = str(venv / "bin" / "python")
    install = [uv, "pip", "install", "-q", "--reinstall-package", "edge-agent", "--python", python]
    subprocess.run([*install, str(wheel)], env=clean, check=True)
    return venv / "bin" / "edge-agent"


# A separate process, like the agent: its figures include interpreter start and imports.
DUCKDB_COPY = """
import sys, time
import duckdb, duckdb_extensions
db, target = sys.argv[1], sys.argv[2]
with duckdb.connect() as conn:
    conn.execute("SET enable_progress_bar = false")
    duckdb_extensions.import_extension("sqlite_scanner", con=conn)
    conn.execute("LOAD sqlite_scanner")
    started = time.perf_counter()
    conn.execute(
        f"COPY (SELECT * FROM sqlite_scan('{db}', 'sensor_readings')) TO '{target}' "
        "(FORMAT parquet, COMPRESSION zstd)"
    )
    print(time.perf_counter() - started)
"""


@dataclass(frozen=True)
class CopyRun:
    """DuckDB's own sqlite_scan -> Parquet COPY (zstd) of the table, no upload, as a process."""

    process_seconds: float  # interpreter, import, extension load and COPY, like `edge-agent`
    statement_seconds: float  # the COPY statement alone
    cpu_seconds: float


def duckdb_copy(db: Path, workdir: Path, env: dict[str, str]) -> CopyRun:
    target = workdir / "duckdb_copy.parquet"
    out = workdir / "duckdb_copy.seconds"
    command = [sys.executable, "-c", DUCKDB_COPY, str(db), str(target)]
    with out.open("w") as handle:
        measured = run_measured(command, env, stdout=handle)
    target.unlink()
    return CopyRun(measured.seconds, float(out.read_text()), measured.cpu_seconds)


@dataclass(frozen=True)
class AgentRun:
    """`edge-agent upload --once` as a node runs it, with its upload to S3."""

    process_seconds: float  # interpreter start to exit
    cycle_seconds: float  # the upload cycle, from the agent's summary line
    cpu_seconds: float
    peak_rss_mb: float


def spread(values: list[float]) -> str:
    return (
        f"min {min(values):,.0f} / median {statistics.median(values):,.0f} / max {max(values):,.0f}"
    )


def agent_run(
    db: Path, env: dict[str, str], workdir: Path, node: str, agent: Path | None = None
) -> AgentRun:
    agent = agent or Path(sys.executable).with_name("edge-agent")
    copy = fresh_copy(db, workdir / f"agent_{node}.db")
    try:
        measured = run_measured(
            [str(agent), "upload", "--once", "--db", str(copy), "--node-id", node], env
        )
    finally:
        remove_database(copy)
    # The agent's own summary line: "uploaded N rows in K object(s) (M MB) in S.SSs (...)".
    cycle = re.search(r"uploaded [\d,]+ rows in \d+ object\(s\) \([\d.]+ MB\) in ([\d.]+)s",
                      measured.stderr)  # fmt: skip
    if cycle is None:
        raise RuntimeError(f"no upload summary in the agent's log: {measured.stderr[-500:]}")
    return AgentRun(
        measured.seconds, float(cycle.group(1)), measured.cpu_seconds, measured.peak_rss_mb
    )


def count_rows_in_s3(bucket: str, env: dict[str, str]) -> int:
    import pyarrow.parquet as pq
    from pyarrow import fs

    s3 = fs.S3FileSystem(
        access_key=env["AWS_ACCESS_KEY_ID"],
        secret_key=env["AWS_SECRET_ACCESS_KEY"],
        endpoint_override=env["AWS_ENDPOINT_URL"].removeprefix("http://"),
        scheme="http",
        region="us-east-1",
    )
    files = [
        info.path
        for info in s3.get_file_info(fs.FileSelector(bucket, recursive=True))
        if info.path.endswith(".parquet") and "/year=" in "/" + info.path.split("/", 1)[1]
    ]
    return sum(pq.ParquetFile(s3.open_input_file(f)).metadata.num_rows for f in files)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--memory-rows", type=int, default=5_000_000)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each (min/median/max)")
    parser.add_argument("--tiny", action="store_true", help="20k rows, for the test suite")
    parser.add_argument("--workdir", type=Path, default=CACHE)
    args = parser.parse_args(argv)
    if args.tiny:
        args.rows, args.memory_rows, args.repeats = 20_000, 30_000, 1
    args.workdir.mkdir(parents=True, exist_ok=True)

    db = database(args.rows, args.workdir)
    results: dict[str, float] = {"rows": args.rows}
    with moto_s3_server() as endpoint:
        env = s3_env(endpoint)
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench-secret",
        )
        client.create_bucket(Bucket="edge-databricks-raw-us-east-1")
        client.create_bucket(Bucket="naive-bench")

        results["ceiling_rows_per_s"] = scan_ceiling(db, args.rows)
        agent = node_agent(args.workdir)
        copies: list[CopyRun] = []
        runs: list[AgentRun] = []
        for run in range(args.repeats):  # interleaved, so drift hits both alike
            copies.append(duckdb_copy(db, args.workdir, env))
            runs.append(agent_run(db, env, args.workdir, f"bench-agent-{run}", agent))
        uploaded = count_rows_in_s3("edge-databricks-raw-us-east-1", env) // args.repeats
        if uploaded != args.rows:
            raise SystemExit(f"agent uploaded {uploaded} rows, expected {args.rows}")
        naive = Path(__file__).with_name("naive_upload.py")
        measured = run_measured([sys.executable, str(naive), str(db), "naive-bench"], env)
        results["naive_rows_per_s"] = args.rows / measured.seconds
        results["naive_peak_rss_mb"] = measured.peak_rss_mb

        big = database(args.memory_rows, args.workdir)
        big_peaks = [
            agent_run(big, env, args.workdir, f"bench-big-{run}", agent).peak_rss_mb
            for run in range(args.repeats)
        ]

    def rates(seconds: list[float]) -> list[float]:
        return [args.rows / s for s in seconds]

    figures = {
        "duckdb_copy_rows_per_s": rates([c.process_seconds for c in copies]),
        "duckdb_statement_rows_per_s": rates([c.statement_seconds for c in copies]),
        "duckdb_rows_per_cpu_s": rates([c.cpu_seconds for c in copies]),
        "agent_rows_per_s": rates([r.process_seconds for r in runs]),
        "agent_cycle_rows_per_s": rates([r.cycle_seconds for r in runs]),
        "agent_rows_per_cpu_s": rates([r.cpu_seconds for r in runs]),
        "agent_peak_rss_mb": [r.peak_rss_mb for r in runs],
        "agent_peak_rss_mb_big_backlog": big_peaks,
    }
    for name, values in figures.items():
        results[name] = statistics.median(values)
    results["big_backlog_rows"] = args.memory_rows
    pairs = {
        "agent_vs_duckdb_copy": ("agent_rows_per_s", "duckdb_copy_rows_per_s"),
        "agent_cycle_vs_duckdb_statement": (
            "agent_cycle_rows_per_s",
            "duckdb_statement_rows_per_s",
        ),
        "agent_vs_duckdb_per_cpu_s": ("agent_rows_per_cpu_s", "duckdb_rows_per_cpu_s"),
    }
    for name, (agent_key, duck_key) in pairs.items():
        results[name] = results[agent_key] / results[duck_key]
    results["agent_vs_naive"] = results["agent_rows_per_s"] / results["naive_rows_per_s"]
    results["agent_vs_ceiling"] = results["agent_rows_per_s"] / results["ceiling_rows_per_s"]
    print(f"SQLite -> S3, {args.rows:,} rows, 26 columns, same database; rows/s as "
          f"min / median / max of {args.repeats} runs")  # fmt: skip
    print(f"  sqlite3 CLI scan ceiling   : {results['ceiling_rows_per_s']:>12,.0f}")
    print(f"  naive pandas (process)     : {results['naive_rows_per_s']:>12,.0f}   "
          f"peak RSS {results['naive_peak_rss_mb']:.0f} MB")  # fmt: skip
    labels = {
        "duckdb_copy_rows_per_s": "DuckDB sqlite_scan -> Parquet COPY, no upload, process",
        "agent_rows_per_s": "edge-agent upload --once (own venv, defaults), process",
        "duckdb_statement_rows_per_s": "DuckDB COPY statement alone",
        "agent_cycle_rows_per_s": "edge-agent upload cycle alone (its summary line)",
        "duckdb_rows_per_cpu_s": "DuckDB COPY, rows per CPU-second",
        "agent_rows_per_cpu_s": "edge-agent, rows per CPU-second (S3 server not counted)",
    }
    for key, label in labels.items():
        print(f"  {label}: {spread(figures[key])}")
    print(f"  agent / naive            : {results['agent_vs_naive']:.2f}x   (target >= 4x)")
    print(f"  agent / ceiling          : {results['agent_vs_ceiling']:.0%}   (target >= 40%)")
    print(f"  agent / DuckDB COPY, process vs process : {results['agent_vs_duckdb_copy']:.0%} "
          "(target >= 100%)")  # fmt: skip
    print(f"  agent / DuckDB COPY, cycle vs statement : "
          f"{results['agent_cycle_vs_duckdb_statement']:.0%}")  # fmt: skip
    print(f"  agent / DuckDB COPY, per CPU-second     : "
          f"{results['agent_vs_duckdb_per_cpu_s']:.0%}")  # fmt: skip
    print(
        f"  agent peak RSS MB, {args.memory_rows:,}-row backlog, defaults: {spread(big_peaks)} "
        "(target <= 150)"
    )
    (args.workdir / f"edge_upload_{args.rows}.json").write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
