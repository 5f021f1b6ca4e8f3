"""The project's dependency rules, read from the source (fails when a change breaks one).

- The agent never imports Dagster or the orchestration code (it installs alone on edge nodes).
- The lakehouse uses only the agent's landing contract (`edge_agent.contract`); only the demo's
  simulated fleet (`orchestration/fleet`, `orchestration/demo`) may use agent internals.
- Serving (`orchestration.lakebase`) never imports reporting (`orchestration.reports`).
- No import cycles between the project's modules.
- The Databricks job stands alone; the REST stand-in is for tests and benchmarks only.
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


def test_the_engine_stand_in_is_used_by_tests_and_benchmarks_only() -> None:
    for module, imports in _all_imports().items():
        if module.startswith("orchestration") and not module.startswith(
            "orchestration.databricks.standin"
        ):
            assert not any(i.startswith("orchestration.databricks.standin") for i in imports), (
                module
            )
