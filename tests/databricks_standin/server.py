"""A loopback stand-in for the Databricks REST API, for machines without a workspace.

It answers the calls the project makes through the real `databricks-sdk` and the real
dagster-databricks Pipes client, with state kept in a local folder:

- Jobs: runs submit / get / cancel. A submitted `spark_python_task` runs here, in a
  subprocess, on local PySpark, with real Delta tables through delta-rs (`local_tables.py`).
  `idempotency_token` returns the run already submitted with it, as the service does.
- Files API for Unity Catalog Volumes: files and directories under `/Volumes/...`.
- Unity Catalog: catalogs, schemas, external locations, grants (stateful, get-or-create).
- Lakebase: database instances, database catalogs, synced tables and credentials; starting a
  synced table's pipeline copies the gold table's rows into a real PostgreSQL.

Every request needs the bearer token it was started with, and every call is counted by route
(`calls`), which is what the API-call benchmark reads.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from tests.databricks_standin.lakebase import LakebaseState
from tests.databricks_standin.unity import UnityCatalogState

ROOT = Path(__file__).resolve().parents[2]  # the project: the launcher is tests.databricks_standin


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Run:
    run_id: int
    run_name: str
    task: dict[str, Any]
    submitted_at: float
    state: str = "PENDING"
    result: str | None = None
    message: str = ""
    started_at: float | None = None
    ended_at: float | None = None
    process: subprocess.Popen | None = None
    cancelled: bool = False
    log: list[str] = field(default_factory=list)
    # The submit's serverless environments (client and pip dependencies), as sent.
    environments: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self, host: str) -> dict[str, Any]:
        state: dict[str, Any] = {"life_cycle_state": self.state, "state_message": self.message}
        if self.result:
            state["result_state"] = self.result
        body: dict[str, Any] = {
            "run_id": self.run_id,
            "run_name": self.run_name,
            "state": state,
            "status": {"state": self.state},
            "run_page_url": f"{host}/jobs/runs/{self.run_id}",
            "start_time": int((self.started_at or self.submitted_at) * 1000),
            "tasks": [{**self.task, "run_id": self.run_id * 10, "state": state}],
        }
        if self.ended_at is not None:
            body["end_time"] = int(self.ended_at * 1000)
            body["run_duration"] = int((self.ended_at - (self.started_at or 0)) * 1000)
            body["execution_duration"] = body["run_duration"]
        return body


class Workspace:
    """The stand-in's state: volumes and tables on disk, runs, catalog and Lakebase objects."""

    def __init__(
        self, root: Path, token: str, task_env: Mapping[str, str], postgres_dsn: str | None
    ) -> None:
        self.root = root
        self.token = token
        self.task_env = dict(task_env)
        self.volumes = root / "volumes"
        self.tables = root / "tables"
        self.dbfs = root / "dbfs"
        for directory in (self.volumes, self.tables, self.dbfs):
            directory.mkdir(parents=True, exist_ok=True)
        self.runs: dict[int, Run] = {}
        self.tokens: dict[str, int] = {}
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.files_read: Counter[str] = Counter()  # Volume paths served (Pipes messages among them)
        # Set by a test: the reply to a run's first submit waits for it (the run has started),
        # as a reply lost or slow on the network would.
        self.hold_submit_reply: threading.Event | None = None
        self.unity = UnityCatalogState()
        self.lakebase = LakebaseState(self.tables, postgres_dsn)
        self.host = ""
        # The identity the token belongs to; the Lakebase role of the same name logs in.
        self.user_name = "postgres"

    # -- files ---------------------------------------------------------------------------
    def local(self, path: str) -> Path:
        if not path.startswith("/Volumes/"):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"not a volume path: {path}")
        local = (self.volumes / path.removeprefix("/Volumes/")).resolve()
        if not local.is_relative_to(self.volumes.resolve()):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"path escapes the volume: {path}")
        return local

    def dbfs_local(self, path: str) -> Path:
        local = (self.dbfs / path.removeprefix("dbfs:").lstrip("/")).resolve()
        if not local.is_relative_to(self.dbfs.resolve()):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"path escapes DBFS: {path}")
        return local

    # -- jobs ----------------------------------------------------------------------------
    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        token = body.get("idempotency_token")
        with self.lock:
            if token and token in self.tokens:
                return {"run_id": self.tokens[token]}
            (task,) = body["tasks"]  # the project submits one task per run
            if "spark_python_task" not in task:
                raise ApiError(400, "INVALID_PARAMETER_VALUE", "only spark_python_task runs here")
            run = Run(len(self.runs) + 1, body.get("run_name", ""), task, time.time())
            run.environments = list(body.get("environments", []))
            self.runs[run.run_id] = run
            if token:
                self.tokens[token] = run.run_id
        timeout = body.get("timeout_seconds") or 0
        threading.Thread(target=self._execute, args=(run, timeout), daemon=True).start()
        if self.hold_submit_reply is not None:
            self.hold_submit_reply.wait(120)
        return {"run_id": run.run_id}

    def _execute(self, run: Run, timeout: float) -> None:
        task = run.task["spark_python_task"]
        script = self.local(task["python_file"])
        env = {
            **os.environ,
            **self.task_env,
            "STANDIN_TABLES": str(self.tables),
            "STANDIN_VOLUMES": str(self.volumes),
            "STANDIN_DBFS": str(self.dbfs),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "PYTHONUNBUFFERED": "1",
            # A job cluster's spark_env_vars (classic compute: Pipes bootstrap goes there).
            **run.task.get("new_cluster", {}).get("spark_env_vars", {}),
        }
        if "new_cluster" in run.task:  # the Spark confs a Databricks job cluster sets
            tags = "spark.databricks.clusterUsageTags"
            env["PYSPARK_SUBMIT_ARGS"] = (
                f"--conf {tags}.clusterId=standin-{run.run_id} "
                f"--conf {tags}.clusterLogDeliveryEnabled=true "
                f"--conf {tags}.clusterLogDestination=dbfs:/cluster-logs pyspark-shell"
            )
        run.started_at = time.time()
        run.state = "RUNNING"
        process = subprocess.Popen(
            # The Databricks runtime's part, played by the launcher; the job runs unchanged.
            [
                sys.executable,
                "-m",
                "tests.databricks_standin.launcher",
                str(script),
                *task.get("parameters", []),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        run.process = process
        if run.cancelled:  # cancelled before it started
            os.killpg(process.pid, signal.SIGKILL)
        assert process.stdout is not None
        timer = threading.Timer(timeout, self._timeout, args=(run,)) if timeout else None
        if timer:
            timer.start()
        for line in process.stdout:
            run.log.append(line.rstrip())
        code = process.wait()
        logs = self.root / "runs"
        logs.mkdir(exist_ok=True)
        (logs / f"{run.run_id}.log").write_text("\n".join(run.log) + "\n")
        if timer:
            timer.cancel()
        run.ended_at = time.time()
        if run.cancelled:
            run.state, run.result, run.message = "TERMINATED", "CANCELED", "canceled by request"
        elif run.result == "TIMEDOUT":
            run.state = "TERMINATED"
        elif code == 0:
            run.state, run.result = "TERMINATED", "SUCCESS"
        else:
            run.state, run.result = "TERMINATED", "FAILED"
            run.message = f"task exited with {code}: {_error_line(run.log)}"[:2000]

    def _timeout(self, run: Run) -> None:
        run.result, run.message = "TIMEDOUT", "run exceeded its timeout_seconds"
        if run.process is not None:
            os.killpg(run.process.pid, signal.SIGKILL)

    def cancel(self, run_id: int) -> None:
        run = self.get_run(run_id)
        run.cancelled = True
        if run.process is not None and run.process.poll() is None:
            os.killpg(run.process.pid, signal.SIGKILL)

    def get_run(self, run_id: int) -> Run:
        if run_id not in self.runs:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"run {run_id} does not exist")
        return self.runs[run_id]


_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Failure)\b")


def _error_line(log: list[str]) -> str:
    """The Python exception the task died of, as a notebook's error cell shows it."""
    causes = [line for line in log if line.startswith("Caused by: ")]
    for line in reversed(log):
        if _EXCEPTION.match(line):
            return line + (f" ({causes[0][:600]})" if causes else "")
    return " | ".join(line for line in log[-3:] if line)


Route = Callable[["Handler", dict[str, str], dict[str, Any]], Any]
ROUTES: list[tuple[str, re.Pattern[str], str, Route]] = []


def route(method: str, pattern: str) -> Callable[[Route], Route]:
    """Register a handler; calls are counted under a readable label (`{path}` for groups)."""
    label = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern)
    label = label.replace("2\\.[12]", "2.2").replace("\\", "")

    def register(function: Route) -> Route:
        ROUTES.append((method, re.compile(f"^{pattern}$"), label, function))
        return function

    return register


class Handler(BaseHTTPRequestHandler):
    workspace: Workspace
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet: the tests print what matters
        pass

    def _dispatch(self, method: str) -> None:
        parsed = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        self.raw_body = self.rfile.read(length) if length else b""
        try:
            if self.headers.get("Authorization") != f"Bearer {self.workspace.token}":
                raise ApiError(401, "UNAUTHENTICATED", "invalid access token")
            for verb, pattern, name, function in ROUTES:
                match = pattern.match(unquote(parsed.path))
                if verb == method and match:
                    self.workspace.calls[f"{method} {name}"] += 1
                    query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
                    body = json.loads(self.raw_body) if self._json_body() else {}
                    result = function(self, {**query, **match.groupdict()}, body)
                    if result is not _RESPONDED:
                        self._json(200, result if result is not None else {})
                    return
            raise ApiError(404, "ENDPOINT_NOT_FOUND", f"no route for {method} {parsed.path}")
        except ApiError as exc:
            self._json(exc.status, {"error_code": exc.code, "message": exc.message})

    def _json_body(self) -> bool:
        return bool(self.raw_body) and "json" in (self.headers.get("Content-Type") or "json")

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def raw(self, status: int, data: bytes, headers: Mapping[str, str] | None = None) -> object:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        return _RESPONDED

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")


_RESPONDED = object()


# -- Files API ----------------------------------------------------------------------------
@route("PUT", r"/api/2.0/fs/files(?P<path>/Volumes/.+)")
def _put_file(h: Handler, p: dict[str, str], _: dict) -> Any:
    target = h.workspace.local(p["path"])
    if target.exists() and p.get("overwrite") == "false":
        raise ApiError(409, "ALREADY_EXISTS", f"{p['path']} already exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
    staged.write_bytes(h.raw_body)
    staged.replace(target)  # readers never see half a file
    return h.raw(204, b"")


@route("GET", r"/api/2.0/fs/files(?P<path>/Volumes/.+)")
def _get_file(h: Handler, p: dict[str, str], _: dict) -> Any:
    target = h.workspace.local(p["path"])
    if not target.is_file():
        raise ApiError(404, "NOT_FOUND", f"{p['path']} does not exist")
    data = target.read_bytes()
    h.workspace.files_read[p["path"]] += 1
    start = 0
    if (ranged := h.headers.get("Range")) and ranged.startswith("bytes="):
        start = int(ranged.removeprefix("bytes=").split("-")[0] or 0)
    headers = {
        "Content-Type": "application/octet-stream",
        "Last-Modified": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()),
    }
    return h.raw(206 if start else 200, data[start:], headers)


@route("HEAD", r"/api/2.0/fs/files(?P<path>/Volumes/.+)")
def _head_file(h: Handler, p: dict[str, str], _: dict) -> Any:
    target = h.workspace.local(p["path"])
    if not target.is_file():
        return h.raw(404, b"")
    return h.raw(200, b"", {"Content-Type": "application/octet-stream"})


@route("DELETE", r"/api/2.0/fs/files(?P<path>/Volumes/.+)")
def _delete_file(h: Handler, p: dict[str, str], _: dict) -> Any:
    target = h.workspace.local(p["path"])
    if not target.is_file():
        raise ApiError(404, "NOT_FOUND", f"{p['path']} does not exist")
    target.unlink()
    return h.raw(204, b"")


@route("PUT", r"/api/2.0/fs/directories(?P<path>/Volumes/.+)")
def _make_directory(h: Handler, p: dict[str, str], _: dict) -> Any:
    h.workspace.local(p["path"]).mkdir(parents=True, exist_ok=True)
    return h.raw(204, b"")


@route("HEAD", r"/api/2.0/fs/directories(?P<path>/Volumes/.+)")
def _head_directory(h: Handler, p: dict[str, str], _: dict) -> Any:
    return h.raw(200 if h.workspace.local(p["path"]).is_dir() else 404, b"")


@route("GET", r"/api/2.0/fs/directories(?P<path>/Volumes/.+)")
def _list_directory(h: Handler, p: dict[str, str], _: dict) -> Any:
    directory = h.workspace.local(p["path"])
    if not directory.is_dir():
        raise ApiError(404, "NOT_FOUND", f"{p['path']} does not exist")
    contents = [
        {
            "path": f"{p['path'].rstrip('/')}/{child.name}",
            "name": child.name,
            "is_directory": child.is_dir(),
            **({"file_size": child.stat().st_size} if child.is_file() else {}),
            "last_modified": int(child.stat().st_mtime * 1000),
        }
        for child in sorted(directory.iterdir())
        if not child.name.startswith(".")
    ]
    return {"contents": contents}


@route("DELETE", r"/api/2.0/fs/directories(?P<path>/Volumes/.+)")
def _delete_directory(h: Handler, p: dict[str, str], _: dict) -> Any:
    directory = h.workspace.local(p["path"])
    if any(directory.iterdir()):
        raise ApiError(400, "DIRECTORY_NOT_EMPTY", f"{p['path']} is not empty")
    directory.rmdir()
    return h.raw(204, b"")


# -- DBFS (classic clusters exchange Pipes messages through it) ---------------------------
@route("POST", r"/api/2.0/dbfs/mkdirs")
def _dbfs_mkdirs(h: Handler, _: dict[str, str], body: dict) -> Any:
    h.workspace.dbfs_local(body["path"]).mkdir(parents=True, exist_ok=True)
    return {}


@route("POST", r"/api/2.0/dbfs/put")
def _dbfs_put(h: Handler, _: dict[str, str], body: dict) -> Any:
    target = h.workspace.dbfs_local(body["path"])
    if target.exists() and not body.get("overwrite"):
        raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"{body['path']} already exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(base64.b64decode(body.get("contents") or ""))
    return {}


@route("GET", r"/api/2.0/dbfs/get-status")
def _dbfs_status(h: Handler, p: dict[str, str], _: dict) -> Any:
    target = h.workspace.dbfs_local(p["path"])
    if not target.exists():
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"{p['path']} does not exist")
    size = target.stat().st_size if target.is_file() else 0
    return {"path": p["path"], "is_dir": target.is_dir(), "file_size": size}


@route("GET", r"/api/2.0/dbfs/read")
def _dbfs_read(h: Handler, p: dict[str, str], _: dict) -> Any:
    target = h.workspace.dbfs_local(p["path"])
    if not target.is_file():
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"{p['path']} does not exist")
    offset, length = int(p.get("offset", 0)), int(p.get("length", 1 << 20))
    data = target.read_bytes()[offset : offset + length]
    return {"bytes_read": len(data), "data": base64.b64encode(data).decode()}


@route("GET", r"/api/2.0/dbfs/list")
def _dbfs_list(h: Handler, p: dict[str, str], _: dict) -> Any:
    target = h.workspace.dbfs_local(p["path"])
    if not target.is_dir():
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"{p['path']} does not exist")
    base = p["path"].rstrip("/")
    return {"files": [{"path": f"{base}/{c.name}", "is_dir": c.is_dir(),
                       "file_size": c.stat().st_size if c.is_file() else 0}
                      for c in sorted(target.iterdir())]}  # fmt: skip


@route("POST", r"/api/2.0/dbfs/delete")
def _dbfs_delete(h: Handler, _: dict[str, str], body: dict) -> Any:
    target = h.workspace.dbfs_local(body["path"])
    if target.is_dir():
        if body.get("recursive"):
            shutil.rmtree(target)
        else:
            target.rmdir()
    elif target.exists():
        target.unlink()
    return {}


# -- Jobs ---------------------------------------------------------------------------------
@route("POST", r"/api/2\.[12]/jobs/runs/submit")
def _submit(h: Handler, _: dict[str, str], body: dict) -> Any:
    return h.workspace.submit(body)


@route("GET", r"/api/2\.[12]/jobs/runs/get")
def _get_run(h: Handler, p: dict[str, str], _: dict) -> Any:
    return h.workspace.get_run(int(p["run_id"])).as_dict(h.workspace.host)


@route("POST", r"/api/2\.[12]/jobs/runs/cancel")
def _cancel(h: Handler, _: dict[str, str], body: dict) -> Any:
    h.workspace.cancel(int(body["run_id"]))
    return {}


@route("GET", r"/api/2\.[12]/jobs/runs/get-output")
def _run_output(h: Handler, p: dict[str, str], _: dict) -> Any:
    run = h.workspace.get_run(int(p["run_id"]))
    return {"logs": "\n".join(run.log[-200:]), "metadata": run.as_dict(h.workspace.host)}


# -- Unity Catalog and Lakebase: their own modules hold the state -------------------------
def _unity(h: Handler) -> UnityCatalogState:
    return h.workspace.unity


def _lakebase(h: Handler) -> LakebaseState:
    return h.workspace.lakebase


def _wrap(call: Callable[..., Any]) -> Any:
    try:
        return call()
    except KeyError as exc:
        raise ApiError(404, "NOT_FOUND", f"{exc.args[0]} does not exist") from None
    except FileExistsError as exc:
        raise ApiError(409, "ALREADY_EXISTS", f"{exc.args[0]} already exists") from None


def _object_routes(base: str, kind: str, state: Callable[[Handler], Any]) -> None:
    """POST {base}/{kind} creates (409 if it exists), GET {base}/{kind}/{name} reads (404)."""

    @route("POST", rf"{base}/{kind}")
    def _create(h: Handler, _: dict[str, str], body: dict) -> Any:
        return _wrap(lambda: state(h).create(kind, body))

    @route("GET", rf"{base}/{kind}/(?P<name>[^/]+)")
    def _get(h: Handler, p: dict[str, str], _: dict) -> Any:
        return _wrap(lambda: state(h).get(kind, p["name"]))


for _kind in ("catalogs", "schemas", "external-locations"):
    _object_routes("/api/2.1/unity-catalog", _kind, _unity)
for _kind in ("instances", "catalogs", "synced_tables"):
    _object_routes("/api/2.0/database", _kind, _lakebase)


@route("GET", r"/api/2.1/unity-catalog/permissions/(?P<kind>[a-z_]+)/(?P<name>[^/]+)")
def _get_grants(h: Handler, p: dict[str, str], _: dict) -> Any:
    return _unity(h).grants(p["kind"], p["name"])


@route("PATCH", r"/api/2.1/unity-catalog/permissions/(?P<kind>[a-z_]+)/(?P<name>[^/]+)")
def _update_grants(h: Handler, p: dict[str, str], body: dict) -> Any:
    return _unity(h).update_grants(p["kind"], p["name"], body.get("changes", []))


@route("POST", r"/api/2.0/pipelines/(?P<pipeline_id>[^/]+)/updates")
def _start_update(h: Handler, p: dict[str, str], body: dict) -> Any:
    return _wrap(lambda: _lakebase(h).start_update(p["pipeline_id"], body))


@route("POST", r"/api/2.0/database/credentials")
def _credential(h: Handler, _: dict[str, str], body: dict) -> Any:
    return _lakebase(h).credential(body)


@route("GET", r"/api/2.0/preview/scim/v2/Me")
def _me(h: Handler, _: dict[str, str], __: dict) -> Any:
    return {"id": "1", "userName": h.workspace.user_name}


@contextmanager
def serve(
    root: Path,
    token: str,
    task_env: Mapping[str, str] | None = None,
    postgres_dsn: str | None = None,
) -> Iterator[Workspace]:
    """Run the stand-in on 127.0.0.1 (a free port) until the block ends; yields its state."""
    workspace = Workspace(root, token, task_env or {}, postgres_dsn)
    handler = type("BoundHandler", (Handler,), {"workspace": workspace})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    workspace.host = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield workspace
    finally:
        for run in workspace.runs.values():
            if run.process is not None and run.process.poll() is None:
                os.killpg(run.process.pid, signal.SIGKILL)
        server.shutdown()
        server.server_close()
