"""Benchmark: SQLite backlog to objects in S3, agent vs naive pandas vs the SQLite scan ceiling.

    uv run python -m bench.edge_upload            # 2 M rows (+ 5 M-row memory run)
    uv run python -m bench.edge_upload --tiny     # seconds; what the test suite runs

Everything runs in one invocation on the same database, so the ratios compare like with like.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
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


def duckdb_copy(db: Path, rows: int, workdir: Path) -> float:
    """DuckDB's own sqlite_scan -> Parquet COPY (zstd) of the same table, no upload: rows/s."""
    import duckdb
    import duckdb_extensions

    target = workdir / "duckdb_copy.parquet"
    with duckdb.connect() as conn:
        duckdb_extensions.import_extension("sqlite_scanner", con=conn)
        conn.execute("LOAD sqlite_scanner")
        started = time.perf_counter()
        conn.execute(
            f"COPY (SELECT * FROM sqlite_scan('{db}', 'sensor_readings')) TO '{target}' "
            "(FORMAT parquet, COMPRESSION zstd)"
        )
        seconds = time.perf_counter() - started
    target.unlink()
    return rows / seconds


def spread(values: list[float]) -> str:
    return (
        f"min {min(values):,.0f} / median {statistics.median(values):,.0f} / max {max(values):,.0f}"
    )


def agent_run(
    db: Path, env: dict[str, str], workdir: Path, node: str, agent: Path | None = None
) -> tuple[float, float]:
    agent = agent or Path(sys.executable).with_name("edge-agent")
    copy = fresh_copy(db, workdir / f"agent_{node}.db")
    try:
        return run_measured(
            [str(agent), "-q", "upload", "--once", "--db", str(copy), "--node-id", node], env
        )
    finally:
        remove_database(copy)


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
        duck, rates, peaks = [], [], []
        for run in range(args.repeats):  # interleaved, so drift hits both alike
            duck.append(duckdb_copy(db, args.rows, args.workdir))
            seconds, rss = agent_run(db, env, args.workdir, f"bench-agent-{run}", agent)
            rates.append(args.rows / seconds)
            peaks.append(rss)
        results["duckdb_copy_rows_per_s"] = statistics.median(duck)
        results["agent_rows_per_s"], results["agent_peak_rss_mb"] = (
            statistics.median(rates),
            statistics.median(peaks),
        )
        results["agent_vs_duckdb_copy"] = (
            results["agent_rows_per_s"] / results["duckdb_copy_rows_per_s"]
        )
        uploaded = count_rows_in_s3("edge-databricks-raw-us-east-1", env) // args.repeats
        if uploaded != args.rows:
            raise SystemExit(f"agent uploaded {uploaded} rows, expected {args.rows}")
        naive = Path(__file__).with_name("naive_upload.py")
        seconds, rss = run_measured([sys.executable, str(naive), str(db), "naive-bench"], env)
        results["naive_rows_per_s"], results["naive_peak_rss_mb"] = args.rows / seconds, rss

        big = database(args.memory_rows, args.workdir)
        big_peaks = [
            agent_run(big, env, args.workdir, f"bench-big-{run}", agent)[1]
            for run in range(args.repeats)
        ]
        results["agent_peak_rss_mb_big_backlog"] = statistics.median(big_peaks)
        results["big_backlog_rows"] = args.memory_rows

    results["agent_vs_naive"] = results["agent_rows_per_s"] / results["naive_rows_per_s"]
    results["agent_vs_ceiling"] = results["agent_rows_per_s"] / results["ceiling_rows_per_s"]
    print(f"SQLite -> S3, {args.rows:,} rows, 26 columns (one run, same database)")
    print(f"  sqlite3 CLI scan ceiling : {results['ceiling_rows_per_s']:>12,.0f} rows/s")
    print(
        f"  edge-agent upload        : {results['agent_rows_per_s']:>12,.0f} rows/s   "
        f"peak RSS {results['agent_peak_rss_mb']:.0f} MB"
    )
    print(
        f"  naive pandas             : {results['naive_rows_per_s']:>12,.0f} rows/s   "
        f"peak RSS {results['naive_peak_rss_mb']:.0f} MB"
    )
    print(f"  agent / naive            : {results['agent_vs_naive']:.2f}x   (target >= 4x)")
    print(f"  agent / ceiling          : {results['agent_vs_ceiling']:.0%}   (target >= 40%)")
    print(f"  DuckDB sqlite_scan->Parquet COPY (no upload), rows/s: {spread(duck)}")
    print(f"  edge-agent upload (its own venv, defaults), rows/s: {spread(rates)}")
    print(f"  agent / DuckDB COPY      : {results['agent_vs_duckdb_copy']:.0%} (target >= 100%)")
    print(
        f"  agent peak RSS MB, {args.memory_rows:,}-row backlog, defaults: {spread(big_peaks)} "
        "(target <= 150)"
    )
    (args.workdir / f"edge_upload_{args.rows}.json").write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
