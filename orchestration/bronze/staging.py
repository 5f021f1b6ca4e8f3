"""Local staging folders for bronze loads: private, named by their process, and swept when that
process is gone (a killed run leaves its folder; the next load removes it)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from orchestration.home import private_directory
from orchestration.maintenance.processes import is_alive

PREFIX = "bronze-"


def sweep(root: Path) -> list[Path]:
    """Remove staging folders whose process is gone; returns what was removed."""
    removed = []
    for folder in root.glob(f"{PREFIX}*"):
        pid_text = folder.name.removeprefix(PREFIX).split("-", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not is_alive(int(pid_text)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


@contextmanager
def staging_folder(root: Path) -> Iterator[Path]:
    """A fresh private folder under `root` for one chunk of a load, removed afterwards."""
    private_directory(root)
    folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=root))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
