"""Configuration precedence, region detection (with a local IMDSv2 stand-in) and secrets."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.errors import ConfigError
from edge_agent.region import detect_region
from edge_agent.secrets import RedactingFilter, Secret


def test_precedence_is_cli_over_env_over_file_over_defaults(tmp_path: Path) -> None:
    file = tmp_path / "agent.yaml"
    file.write_text("node_id: from-file\nbucket_prefix: fileprefix\nbatch_rows: 10\nworkers: 1\n")
    env = {"EDGE_AGENT_BUCKET_PREFIX": "envprefix", "EDGE_AGENT_BATCH_ROWS": "20"}
    config = load_config({"batch_rows": 30, "node_id": None}, env, file)
    assert config.batch_rows == 30  # command line
    assert config.bucket_prefix == "envprefix"  # environment over file
    assert config.node_id == "from-file"  # file over default
    assert config.workers == 1 and config.default_region == "us-east-1"  # default


def test_yaml_typos_and_bad_values_are_clear_errors(tmp_path: Path) -> None:
    file = tmp_path / "agent.yaml"
    file.write_text("batch_row: 10\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_config({}, {}, file)
    file.write_text("emergency:\n  temperature_hi: 80\n")
    with pytest.raises(ConfigError, match="unknown emergency setting"):
        load_config({}, {}, file)
    with pytest.raises(ConfigError, match="batch_rows"):
        load_config({}, {"EDGE_AGENT_BATCH_ROWS": "many"}, None)
    file.write_text("emergency:\n  temperature_high: 80\n")
    assert load_config({}, {}, file).scenario.emergency.temperature_high == 80


class _FakeImds(BaseHTTPRequestHandler):
    """Stands in for EC2 instance metadata (IMDSv2), which cannot run here."""

    def do_PUT(self) -> None:
        assert self.path == "/latest/api/token"
        self._reply(b"token-123")

    def do_GET(self) -> None:
        if self.headers.get("X-aws-ec2-metadata-token") != "token-123":
            self.send_response(401)
            self.end_headers()
            return
        assert self.path == "/latest/meta-data/placement/region"
        self._reply(b"ap-southeast-2")

    def _reply(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def imds() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeImds)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_region_order_env_then_instance_metadata_then_default(imds: str) -> None:
    assert detect_region(None, {"AWS_REGION": "eu-west-1"}, imds, 1.0, "us-east-1") == (
        "eu-west-1", "AWS_REGION",
    )  # fmt: skip
    assert detect_region(None, {"AWS_DEFAULT_REGION": "eu-north-1"}, imds, 1.0, "us-east-1")[0] == (
        "eu-north-1"
    )
    assert detect_region(None, {}, imds, 1.0, "us-east-1") == (
        "ap-southeast-2", "EC2 instance metadata",
    )  # fmt: skip
    closed = "http://127.0.0.1:9"
    assert detect_region(None, {}, closed, 0.2, "us-east-1") == ("us-east-1", "default")
    assert detect_region("us-west-2", {"AWS_REGION": "eu-west-1"}, imds, 1.0, "x")[0] == "us-west-2"


def test_secrets_are_masked_in_repr_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    token = Secret("dagster-token-value-42")
    config = load_config({}, {"EDGE_AGENT_DAGSTER_TOKEN": token}, None)
    assert "dagster-token-value-42" not in repr(config)
    logger = logging.getLogger("test.secrets")
    handler = logging.Handler()
    handler.addFilter(RedactingFilter())
    records: list[str] = []
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.warning("failed with header %s", "Bearer dagster-token-value-42")
    assert records == ["failed with header Bearer ***"]


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("filtered:\n  drop_columns: serial_number\n", "filtered.drop_columns must be a list"),
        ("emergency:\n  temperature_high: hot\n", "emergency.temperature_high must be a number"),
        ("filtered:\n  remove_out_of_range: maybe\n", "filtered.remove_out_of_range must be true"),
        ("filtered:\n  coordinate_precision: 2.5\n", "must be a whole number"),
        ("filtered: [a]\n", "filtered must be a mapping"),
        ("future_tolerance_seconds: soon\n", "future_tolerance_seconds must be a number"),
    ],
)
def test_scenario_rules_are_validated_when_read_with_one_line_errors(
    tmp_path: Path, agent_env: dict[str, str], node_db: Path, yaml_text: str, message: str
) -> None:
    from tests.conftest import run_agent

    file = tmp_path / "agent.yaml"
    file.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message):
        load_config({}, {}, file)
    proc = run_agent(
        "upload", "--once", "--db", str(node_db), "--config", str(file), env=agent_env, check=False
    )
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
