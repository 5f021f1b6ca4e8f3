"""The README and docs/ stay true to the code: every path they name exists, every command they
name is installed, every asset key they name is defined."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PATH = re.compile(r"`((?:edge_agent|orchestration|docs|tests|bench|dagster_home)/[\w./-]*)`")


def test_every_path_the_docs_name_exists() -> None:
    missing = [
        (doc.name, path)
        for doc in DOCS
        for path in PATH.findall(doc.read_text())
        if "<" not in path
        and not (path.startswith("dagster_home/") and path != "dagster_home/dagster.yaml")
        and not (ROOT / path.rstrip("/")).exists()  # (dagster_home/*: written at run time)
    ]
    assert not missing


def test_the_readme_links_every_reference_page() -> None:
    readme = (ROOT / "README.md").read_text()
    for page in (ROOT / "docs").glob("*.md"):
        assert f"docs/{page.name}" in readme, page.name


def test_commands_the_docs_name_are_the_projects() -> None:
    scripts = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])
    scripts |= set(
        tomllib.loads((ROOT / "edge_agent" / "pyproject.toml").read_text())["project"]["scripts"]
    )
    text = "\n".join(doc.read_text() for doc in DOCS)
    commands = ("lakehouse-demo", "lakehouse-live", "lakehouse-preview", "lakebase-load",
                "edge-agent", "lakehouse-databricks-plan")  # fmt: skip
    for command in commands:
        assert command in scripts and f"`{command}" in text, command


def test_asset_keys_in_the_lakehouse_reference_exist() -> None:
    from definitions import defs

    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    text = (ROOT / "docs" / "lakehouse.md").read_text()
    named = set(re.findall(r"`((?:landing|bronze|silver|gold|lakebase|reports|demo)/\w+)`", text))
    assert named and named <= keys, named - keys
