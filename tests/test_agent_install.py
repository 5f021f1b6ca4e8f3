"""The edge agent installs alone: its wheel, in a clean venv, uploads with no Dagster anywhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from tests.conftest import bucket, landed_ids, source_ids

ROOT = Path(__file__).resolve().parents[1]


def _uv() -> str:
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv is needed to build the agent's wheel (the README's install step)"
    return uv


def _run(*command: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    proc = subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, f"{' '.join(command)}:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def test_the_agent_wheel_installs_alone_and_uploads(
    tmp_path: Path, s3: Any, node_db: Path, bucket_prefix: str, agent_env: dict[str, str]
) -> None:
    uv = _uv()
    dist = tmp_path / "dist"
    _run(uv, "build", "--package", "edge-agent", "--wheel", "-o", str(dist), cwd=ROOT)
    (wheel,) = dist.glob("edge_agent-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith(("orchestration", "definitions", "tests"))]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "edge-agent" in scripts and "lakehouse-demo" not in scripts
    assert "lakebase-load" not in scripts

    venv = tmp_path / "node-venv"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_"))}
    _run(uv, "venv", "--python", sys.executable, str(venv), env=clean)
    python = venv / "bin" / "python"
    _run(uv, "pip", "install", "--python", str(python), str(wheel), env=clean)
    agent = str(venv / "bin" / "edge-agent")
    env = {**agent_env, "PATH": f"{venv / 'bin'}:/usr/bin:/bin"}
    env.pop("PYTHONPATH", None)
    assert "usage: edge-agent" in _run(agent, "--help", env=env, cwd=tmp_path)
    _run(agent, "upload", "--once", "--db", str(node_db), "--node-id", "n1",
         "--bucket-prefix", bucket_prefix, env=env, cwd=tmp_path)  # fmt: skip
    data, _ = landed_ids(s3, bucket(bucket_prefix, "raw"))
    assert set(data) == source_ids(node_db) and set(data.values()) == {1}
    for module in ("dagster", "orchestration", "duckdb"):
        proc = subprocess.run(
            [str(python), "-c", f"import {module}"], env=env, cwd=tmp_path,
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr, module
