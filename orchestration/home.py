"""DAGSTER_HOME, the one place local state lives, and files in it readable by their owner only."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PRIVATE_FILE = 0o600
# Owner only. As root, the embedded PostgreSQL runs as its own system user and must traverse
# DAGSTER_HOME to reach its data folder: others may then enter (x) but never list or read.
PRIVATE_DIRECTORY = 0o711 if os.name == "posix" and os.geteuid() == 0 else 0o700
_OPEN_TO_OTHERS = 0o077 & ~PRIVATE_DIRECTORY


def dagster_home() -> Path:
    """$DAGSTER_HOME, or ./dagster_home; created (or tightened) to owner-only access."""
    home = Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / "dagster_home")
    return private_directory(home)


def private_directory(path: Path) -> Path:
    """`path` (and missing parents) as a directory only its owner can list or enter."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIRECTORY)
    if path.stat().st_mode & _OPEN_TO_OTHERS:
        path.chmod(PRIVATE_DIRECTORY)
    return path


def make_private(*paths: Path) -> None:
    """Owner-only permissions on files that exist (a data file, its WAL, a report)."""
    for path in paths:
        try:
            if path.stat().st_mode & 0o077:
                path.chmod(PRIVATE_FILE)
        except FileNotFoundError:
            continue


_umask_lock = threading.Lock()
_umask_holders = 0
_umask_before = 0


@contextmanager
def owner_only_files() -> Iterator[None]:
    """Every file created inside, by this code or a library (DuckDB's file and its WAL, staged
    objects), is owner-only: the process umask is 077 meanwhile. The umask is per process, so
    threads share it: the first to enter tightens it and the last to leave restores it."""
    global _umask_holders, _umask_before
    with _umask_lock:
        if _umask_holders == 0:
            _umask_before = os.umask(0o077)
        _umask_holders += 1
    try:
        yield
    finally:
        with _umask_lock:
            _umask_holders -= 1
            if _umask_holders == 0:
                os.umask(_umask_before)


def write_private(path: Path, text: str) -> Path:
    """Write `text` atomically into a file created owner-only (readers never see half of it)."""
    private_directory(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    make_private(tmp)
    tmp.replace(path)
    return path
