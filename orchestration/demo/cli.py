"""`lakehouse-demo`: configuration is checked before the demo (and Dagster) loads, so a bad
environment or workload file is one line and exit status 2, never a traceback."""

from __future__ import annotations

import sys

from orchestration.settings import ConfigurationError, environment_settings


def main(argv: list[str] | None = None) -> int:
    try:
        environment_settings()
        from orchestration.demo.run import main as run_demo  # loads the definitions

        return run_demo(argv)
    except ConfigurationError as exc:
        print(f"lakehouse-demo: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
