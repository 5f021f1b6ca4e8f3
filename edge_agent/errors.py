"""Errors the agent reports to its user as one line, with the process exit code they map to."""

from __future__ import annotations

EXIT_FAILURE = 1
EXIT_USAGE = 2


class AgentError(Exception):
    """A failure the user can act on; `str()` is the one-line message shown to them."""

    exit_code = EXIT_FAILURE


class ConfigError(AgentError):
    """Bad configuration or arguments: nothing was changed or uploaded."""

    exit_code = EXIT_USAGE


class SourceError(AgentError):
    """The node's SQLite database cannot be read as a sensor source."""


class StorageError(AgentError):
    """S3 is unreachable, refuses the request, or the bucket is missing."""
