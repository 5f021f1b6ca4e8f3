"""Reports to Dagster: refused ones are dead-lettered, claims outlast a batch, no URL secrets.

A small http.server on loopback stands in for Dagster's `/report_asset_materialization/`
endpoint and answers as each test scripts it; the node database is a real SQLite file.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import load_config
from edge_agent.control import ControlStore
from edge_agent.database import NodeDatabase
from edge_agent.reporting import HttpReporter, flush_outbox
from edge_agent.simulate import SimulationSpec, simulate
from tests.conftest import bucket, list_keys, run_agent, upload

Answer = Callable[[dict[str, Any]], int]


class _Dagster:
    """Dagster's report endpoint, scripted: `answer(body)` gives the HTTP status (and may take
    its time); every request is recorded, and the bodies it accepted with a 200."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.accepted: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        dagster = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with dagster.lock:
                    dagster.requests.append((dict(self.headers), body))
                status = dagster.answer(body)
                reply = b"{}" if status == 200 else b'{"error": "scripted refusal"}'
                if status == 200:
                    with dagster.lock:
                        dagster.accepted.append(body)
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.handle_error = lambda *args: None  # type: ignore[method-assign]
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def versions(self, bodies: list[dict[str, Any]]) -> Counter[str]:
        with self.lock:
            return Counter(body["data_version"] for body in bodies)


@contextmanager
def dagster_stand_in(answer: Answer) -> Iterator[_Dagster]:
    dagster = _Dagster(answer)
    threading.Thread(target=dagster.server.serve_forever, daemon=True).start()
    try:
        yield dagster
    finally:
        dagster.server.shutdown()
        dagster.server.server_close()


def _sidecar_versions(s3: Any, name: str) -> set[str]:
    keys = [k for k in list_keys(s3, name, "year=") if k.endswith(".json")]
    sidecars = [json.loads(s3.get_object(Bucket=name, Key=k)["Body"].read()) for k in keys]
    return {sidecar["content_sha256"] for sidecar in sidecars}


def _status(db: Path, env: dict[str, str]) -> str:
    return run_agent("status", "--db", str(db), env=env).stdout


def test_report_max_attempts_follows_the_configuration_precedence(tmp_path: Path) -> None:
    file = tmp_path / "agent.yaml"
    file.write_text("report_max_attempts: 7\n")
    env = {"EDGE_AGENT_REPORT_MAX_ATTEMPTS": "4"}
    assert load_config({}, {}, None).report_max_attempts == 5
    assert load_config({}, {}, file).report_max_attempts == 7
    assert load_config({}, env, file).report_max_attempts == 4
    assert load_config({"report_max_attempts": 2}, env, file).report_max_attempts == 2


def test_a_refused_report_is_dead_lettered_after_n_tries_and_the_reports_after_it_flow(
    s3: Any, node_db: Path, bucket_prefix: str, agent_env: dict[str, str]
) -> None:
    refused: set[str] = set()  # Dagster refuses the first report it sees, every time
    refusing = threading.Event()
    refusing.set()

    def answer(body: dict[str, Any]) -> int:
        if refusing.is_set() and not refused:
            refused.add(body["data_version"])
        return 422 if refusing.is_set() and body["data_version"] in refused else 200

    with dagster_stand_in(answer) as dagster:
        args = ("--dagster-url", dagster.url, "--batch-rows", "500")
        limited = {**agent_env, "EDGE_AGENT_REPORT_MAX_ATTEMPTS": "2"}
        first = upload(node_db, bucket_prefix, limited, *args)
        objects = _sidecar_versions(s3, bucket(bucket_prefix, "raw"))
        assert len(objects) > 3 and len(refused) == 1
        assert "report #1 for landing/raw " in first.stderr
        assert "refused (try 1 of 2): Dagster answered HTTP 422" in first.stderr
        assert f"reports delivered {len(objects) - 1}, queued 1, dead letters 0" in first.stderr
        status = _status(node_db, agent_env)
        assert "reports queued for Dagster: 1" in status
        assert "reports dead-lettered (refused by Dagster): 0" in status

        env = {**agent_env, "EDGE_AGENT_REPORT_MAX_ATTEMPTS": "9"}  # the command line wins
        args = (*args, "--report-max-attempts", "2")
        second = upload(node_db, bucket_prefix, env, *args)
        warning = next(line for line in second.stderr.splitlines() if "dead-lettered" in line)
        assert " WARNING report #1 for landing/raw " in warning
        assert "dead-lettered after 2 refusal(s), the last: Dagster answered HTTP 422" in warning
        assert "reports delivered 0, queued 0, dead letters 1" in second.stderr
        status = _status(node_db, agent_env)
        assert "reports queued for Dagster: 0" in status
        assert "reports dead-lettered (refused by Dagster): 1" in status
        assert "#1 landing/raw " in status and "HTTP 422, refused 2 time(s)" in status
        assert "scripted refusal" in status  # Dagster's own words are kept with it

        # Later uploads report as usual; the dead letter is not offered again.
        simulate(node_db, SimulationSpec(rows=600, sensors=2, node_id="n1", seed=12))
        third = upload(node_db, bucket_prefix, env, *args)
        assert "queued 0, dead letters 1" in third.stderr
        assert dagster.versions([b for _, b in dagster.requests])[next(iter(refused))] == 2

        requeued = run_agent("reports", "requeue", "--db", str(node_db), env=agent_env)
        assert "requeued 1 report(s)" in requeued.stdout
        assert "reports queued for Dagster: 1" in _status(node_db, agent_env)
        refusing.clear()  # Dagster was fixed
        fourth = upload(node_db, bucket_prefix, env, *args)
        assert "reports delivered 1, queued 0, dead letters 0" in fourth.stderr

        everything = _sidecar_versions(s3, bucket(bucket_prefix, "raw"))
        accepted = dagster.versions(dagster.accepted)
    assert set(accepted) == everything and set(accepted.values()) == {1}


def _queue(store: ControlStore, count: int) -> None:
    store.db.executemany(
        "INSERT INTO report_outbox (asset_key, body, created_at) VALUES (?, ?, ?)",
        [("landing/raw", json.dumps({"data_version": f"v{i}"}), "2026-01-01T00:00:00+00:00")
         for i in range(count)],
    )  # fmt: skip


def _node_store(path: Path) -> ControlStore:
    if not path.exists():
        path.touch()  # an empty file is an empty SQLite database
    return ControlStore(NodeDatabase(path))


_BEFORE_DEAD_LETTERS = """CREATE TABLE report_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, asset_key TEXT NOT NULL, body TEXT NOT NULL,
    created_at TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,
    claimed_until REAL NOT NULL DEFAULT 0)"""


def test_transient_failures_never_dead_letter(tmp_path: Path) -> None:
    """Dagster down, 5xx, 408, 429, a timeout, and answers about the agent's setup (401, 403,
    404: a token or URL every report shares): the reports stay queued however often, even with
    one try allowed. The node database is one an older agent made (its outbox table)."""
    db = tmp_path / "node.db"
    db.touch()
    with NodeDatabase(db) as old:
        old.execute(_BEFORE_DEAD_LETTERS)
        old.execute(
            "INSERT INTO report_outbox (asset_key, body, created_at, attempts) "
            "VALUES ('landing/raw', '{\"data_version\": \"old\"}', '2026-01-01', 3)"
        )
    statuses = iter([503, 500, 502, 408, 429, 401, 403, 404, "slow"])  # then 200s

    def answer(body: dict[str, Any]) -> int:
        status = next(statuses, 200)
        if status == "slow":
            time.sleep(1.5)  # longer than the reporter waits: it has given up
            return 503
        return int(status)

    with _node_store(db) as store, dagster_stand_in(answer) as dagster:
        _queue(store, 4)
        down = HttpReporter("http://127.0.0.1:9", None, 0.5)  # nothing listens there
        up = HttpReporter(dagster.url, None, 0.5)
        for reporter in (down, up, up, up, up, up, up, up, up, up):
            result = flush_outbox(store, reporter, max_attempts=1)
            assert (result.delivered, result.pending, result.dead_letters) == (0, 5, 0)
        assert store.dead_letter_count() == 0
        result = flush_outbox(store, up, max_attempts=1)
        assert (result.delivered, result.pending, result.dead_letters) == (5, 0, 0)
        assert dagster.versions(dagster.accepted) == Counter(["old", "v0", "v1", "v2", "v3"])


class _Clock:
    """The control tables' clock: real time, plus the time the stand-in says requests took."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.lock = threading.Lock()

    def time(self) -> float:
        with self.lock:
            return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.offset += seconds


def test_two_claimers_never_send_a_report_twice_while_a_batch_outlasts_a_minute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Agent A sends 40 reports to a slow Dagster; every answer takes the whole 3 s timeout
    (the clock of the claims is moved on by that much; the server also really waits). After
    75 s of that, agent B flushes the same node database: it must send none of A's reports."""
    clock = _Clock()
    monkeypatch.setattr("edge_agent.control.time", clock)
    timeout = 3.0
    b_may_start = threading.Event()
    answered = Counter[str]()

    def answer(body: dict[str, Any]) -> int:
        time.sleep(0.02)
        clock.advance(timeout)
        answered["all"] += 1
        if answered["all"] == 25:
            b_may_start.set()
        return 200

    db = tmp_path / "node.db"
    with _node_store(db) as a, _node_store(db) as b, dagster_stand_in(answer) as dagster:
        _queue(a, 40)
        results: list[Any] = []
        sender = threading.Thread(
            target=lambda: results.append(flush_outbox(a, HttpReporter(dagster.url, None, timeout)))
        )
        sender.start()
        assert b_may_start.wait(30)
        flush_outbox(b, HttpReporter(dagster.url, None, timeout))
        sender.join(60)
        assert not sender.is_alive()
        sent = dagster.versions([body for _, body in dagster.requests])
        assert sent == Counter({f"v{i}": 1 for i in range(40)}), "a report was sent twice"
        assert a.pending_reports() == 0


def test_a_lapsed_claim_is_not_sent_by_its_old_holder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A paused past its claim (a stopped process, a suspended machine): B takes the reports,
    and A, resuming, finds its claim gone before it sends anything."""
    clock = _Clock()
    monkeypatch.setattr("edge_agent.control.time", clock)
    db = tmp_path / "node.db"
    with _node_store(db) as a, _node_store(db) as b:
        _queue(a, 3)
        taken = [r.id for r in a.take_reports(10, 60.0)]
        assert b.take_reports(10, 60.0) == []
        assert a.renew_report(taken[0], 36.0)
        clock.advance(120.0)
        assert [r.id for r in b.take_reports(10, 60.0)] == taken
        assert not a.renew_report(taken[1], 36.0)
        assert b.renew_report(taken[1], 36.0)


def test_reports_of_an_agent_killed_while_sending_go_out_with_the_next_run_at_once(
    s3: Any, node_db: Path, bucket_prefix: str, agent_env: dict[str, str]
) -> None:
    """Two real agent processes: the first is killed while Dagster is slow to answer; its claim
    on the queued reports must not make the next run wait for the hold to run out."""
    answered = threading.Event()  # the first request waits until the test lets it go
    asked = threading.Event()

    def answer(body: dict[str, Any]) -> int:
        asked.set()
        answered.wait(60)
        return 200

    with dagster_stand_in(answer) as slow:
        command = [
            sys.executable, "-m", "edge_agent", "upload", "--once", "--db", str(node_db),
            "--node-id", "n1", "--bucket-prefix", bucket_prefix, "--dagster-url", slow.url,
            "--batch-rows", "1000",
        ]  # fmt: skip
        first = subprocess.Popen(command, env=agent_env, stderr=subprocess.DEVNULL)
        try:
            assert asked.wait(60), "the first agent never reported"
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(30)
            answered.set()
    objects = _sidecar_versions(s3, bucket(bucket_prefix, "raw"))
    with dagster_stand_in(lambda body: 200) as dagster:
        second = upload(node_db, bucket_prefix, agent_env, "--dagster-url", dagster.url)
        assert f"reports delivered {len(objects)}, queued 0" in second.stderr
        assert set(dagster.versions(dagster.accepted)) == objects


def test_the_dagster_url_user_info_is_sent_as_basic_auth_and_never_printed(
    node_db: Path, bucket_prefix: str, agent_env: dict[str, str]
) -> None:
    password = "Pr0xy-S3cret-4417"
    with dagster_stand_in(lambda body: 200) as dagster:
        port = dagster.server.server_address[1]
        url = f"http://proxyuser:{password}@127.0.0.1:{port}"
        env = {**agent_env, "EDGE_AGENT_DAGSTER_URL": url}
        reached = upload(node_db, bucket_prefix, env)
        requests = list(dagster.requests)
    assert password not in reached.stderr and "proxyuser" not in reached.stderr
    assert f"reporting to http://***@127.0.0.1:{port}" in reached.stderr
    assert requests and "queued 0" in reached.stderr
    expected = "Basic " + base64.b64encode(f"proxyuser:{password}".encode()).decode()
    assert all(headers["Authorization"] == expected for headers, _ in requests)

    simulate(node_db, SimulationSpec(rows=100, sensors=2, node_id="n1", seed=13))
    down = f"http://proxyuser:{password}@127.0.0.1:9"  # nothing listens there
    unreachable = upload(node_db, bucket_prefix, agent_env, "--dagster-url", down)
    assert "Dagster at http://***@127.0.0.1:9 is unreachable" in unreachable.stderr
    for proc in (reached, unreachable):
        assert password not in proc.stderr and password not in proc.stdout
        assert "proxyuser" not in proc.stderr

    from edge_agent.secrets import redact_url

    for shown in (url, down, f"https://proxyuser:{password}@dagster.example/x"):
        assert "***@" in redact_url(shown) and password not in redact_url(shown)
    assert redact_url("http://127.0.0.1:3000/acme") == "http://127.0.0.1:3000/acme"
