"""The project's dependency rules, read from the source (fails when a change breaks one).

- The agent never imports Dagster or the orchestration code (it installs alone on edge nodes).
- The lakehouse uses only the agent's landing contract (`edge_agent.contract`); only the demo's
  simulated fleet (`orchestration/fleet`, `orchestration/demo`) may use agent internals.
- Serving (`orchestration.lakebase`) never imports reporting (`orchestration.reports`).
- No import cycles between the project's modules.
- The Databricks job stands alone; test doubles (the REST stand-in) live under tests/ only.
- Assets are defined once: no asset, check, sensor or schedule under the Databricks package.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edge_agent", "orchestration")
DEMO = ("orchestration.fleet", "orchestration.demo")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str) -> set[str]:
    return _imports_in(path.read_text(), module, is_package=path.name == "__init__.py")


def _imports_in(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module `source` imports, anywhere in it (functions and TYPE_CHECKING included)."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def _graph() -> dict[str, set[str]]:
    modules = {
        _module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    }
    return {
        name: {m for m in _imports(path, name) if m in modules and m != name}
        for name, path in modules.items()
    } | {"__external__": set()}


def _all_imports() -> dict[str, set[str]]:
    return {
        _module_name(path): _imports(path, _module_name(path))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
    }


def test_the_agent_never_imports_dagster_or_the_orchestration_code() -> None:
    for module, imports in _all_imports().items():
        if module.startswith("edge_agent"):
            bad = {
                i for i in imports
                if i.split(".")[0] in ("dagster", "orchestration", "duckdb", "polars")
                or (i.startswith("dagster_") and not i.startswith("dagster_pipes"))
            }  # fmt: skip
            assert not bad, f"{module} imports {sorted(bad)}"


def test_the_lakehouse_uses_only_the_agents_landing_contract() -> None:
    for module, imports in _all_imports().items():
        if module.startswith("orchestration") and not module.startswith(DEMO):
            internals = {
                i for i in imports
                if i.startswith("edge_agent") and not i.startswith("edge_agent.contract")
            }  # fmt: skip
            assert not internals, f"{module} imports agent internals {sorted(internals)}"


def test_serving_never_imports_reporting() -> None:
    for module, imports in _all_imports().items():
        if module.startswith("orchestration.lakebase"):
            reports = {i for i in imports if i.startswith("orchestration.reports")}
            assert not reports, f"{module} imports {sorted(reports)}"


def test_no_import_cycles() -> None:
    graph = _graph()
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycle = [*path[path.index(node) :], node]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if node in done:
            return
        for target in sorted(graph.get(node, ())):
            visit(target, [*path, node])
        done.add(node)

    for start in sorted(graph):
        visit(start, [])


def test_the_rules_see_a_violation() -> None:
    """The checker itself: a module importing an agent internal is caught."""
    source = "from edge_agent.batches import encode_parquet\nfrom . import contract\n"
    imports = _imports_in(source, "orchestration.probe")
    assert "edge_agent.batches" in imports and "orchestration.contract" in imports


def test_the_databricks_job_stands_alone() -> None:
    """The job is uploaded as one file to the workspace: only PySpark, dagster-pipes, boto3 and
    the standard library, never the project or Dagster itself."""
    for module, imports in _all_imports().items():
        if module.startswith("orchestration.databricks.job"):
            bad = {
                i for i in imports
                if i.split(".")[0] in ("orchestration", "edge_agent", "dagster", "duckdb")
                or (i.startswith("dagster_") and not i.startswith("dagster_pipes"))
            }  # fmt: skip
            assert not bad, f"{module} imports {sorted(bad)}"


def test_the_databricks_job_has_no_local_mode() -> None:
    """The job reads no variable but the one Pipes sets on classic clusters, and names nothing
    local: a test runner hands it a runtime instead of switching it into a mode."""
    source = (ROOT / "orchestration" / "databricks" / "job" / "lakehouse_job.py").read_text()
    read = {
        ast.unparse(node)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and "environ" in ast.unparse(node.func)
    }
    assert read == {"os.environ.get('DAGSTER_PIPES_CONTEXT')"}, read
    for word in ("LOCAL", "standin", "stand-in", "STANDIN"):
        assert word not in source, word


def test_the_product_never_imports_test_doubles() -> None:
    """The Databricks stand-in and every other double live under tests/, outside the wheel."""
    for module, imports in _all_imports().items():
        doubles = {i for i in imports if i.split(".")[0] == "tests"}
        assert not doubles, f"{module} imports {sorted(doubles)}"
    assert not list((ROOT / "orchestration").rglob("*standin*"))


def test_the_wheel_holds_the_product_and_no_test_double(tmp_path: Path) -> None:
    """What `uv build` ships: the orchestration package, with the job, without tests/."""
    import subprocess
    import zipfile

    subprocess.run(
        ["uv", "build", "--wheel", "-o", str(tmp_path), "--no-build-logs"],
        cwd=ROOT, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("edge_lakehouse-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "orchestration/databricks/job/lakehouse_job.py" in names
    assert "orchestration/engine.py" in names
    assert not [n for n in names if n.startswith("tests/") or "standin" in n], names


def _decorators(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                found.add(ast.unparse(target))
    return found


def test_assets_are_defined_once_not_per_engine() -> None:
    """Each asset has one definition; an engine's package holds what the engine does (the
    engine resource, its job, its API calls), never an asset, check or sensor of its own."""
    for path in (ROOT / "orchestration" / "databricks").rglob("*.py"):
        defining = {
            d for d in _decorators(path)
            if d.rpartition(".")[2] in ("asset", "multi_asset", "asset_check", "sensor", "schedule")
        }  # fmt: skip
        assert not defining, f"{path.relative_to(ROOT)} defines {sorted(defining)}"
    probe = ROOT / "orchestration" / "silver" / "assets.py"
    assert "dg.asset" in _decorators(probe)  # the checker sees a decorator where there is one
