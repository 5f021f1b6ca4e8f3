"""Reports each uploaded object to Dagster as a materialization of `landing/<scenario>`.

Reports are queued in the node database with the watermark (the outbox), then delivered over
HTTP to the webserver's `/report_asset_materialization/` endpoint, or over Dagster Pipes when
Dagster launched the agent. A delivery failure leaves the report queued for the next cycle.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any, NoReturn, Protocol
from urllib.parse import urlsplit

from edge_agent.contract import PIPES_MESSAGE_KIND, partition_hour
from edge_agent.control import ControlStore
from edge_agent.storage import StoredObject

log = logging.getLogger("edge_agent")


class ReportError(Exception):
    pass


class Reporter(Protocol):
    def deliver(self, asset_key: str, body: dict[str, Any]) -> None: ...


def report_body(
    stored: StoredObject, sidecar: dict[str, Any], partition: str, description: str
) -> dict[str, Any]:
    """The JSON the report endpoint takes: partition, data version, metadata."""
    return {
        "partition": partition,
        "data_version": stored.sha256,
        "description": description,
        "metadata": {
            "object_uri": stored.uri,
            "metadata_uri": f"s3://{stored.bucket}/{sidecar['metadata_key']}",
            "row_count": sidecar["row_count"],
            "bytes": stored.size,
            "first_timestamp": sidecar["first_timestamp"],
            "last_timestamp": sidecar["last_timestamp"],
            "content_sha256": stored.sha256,
            "schema_fingerprint": sidecar["schema_fingerprint"],
            "node_id": sidecar["node_id"],
            "region": sidecar["region"],
            "batch_id": sidecar["batch_id"],
            "source_key_range": (
                f"{sidecar['watermark']['start_exclusive'] + 1}.."
                f"{sidecar['watermark']['end_inclusive']}"
            ),
        },
    }


class _RedirectedError(Exception):
    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """urllib would follow a redirect with every header, the API token included, to any host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl) -> NoReturn:  # type: ignore[no-untyped-def]
        raise _RedirectedError(newurl)


_LOOPBACK = ("localhost", "127.0.0.1", "::1")


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in _LOOPBACK or host.startswith("127.")


class HttpReporter:
    """POSTs to the Dagster webserver. Dagster+ needs an API token; OSS has no auth at all.

    A redirect is a failed delivery, never followed: the token stays with the configured host.
    """

    def __init__(self, base_url: str, token: str | None, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirects())
        if token and urlsplit(self.base_url).scheme == "http" and not _is_loopback(base_url):
            log.warning(
                "the Dagster API token goes to %s over plain http; use https",
                urlsplit(self.base_url).hostname,
            )

    def deliver(self, asset_key: str, body: dict[str, Any]) -> None:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Dagster-Cloud-Api-Token"] = self.token
        request = urllib.request.Request(  # noqa: S310 - URL validated as http(s) in config
            f"{self.base_url}/report_asset_materialization/{asset_key}",
            data=json.dumps(body).encode(),
            headers=headers,
            method="POST",
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read()
        except _RedirectedError as exc:
            raise ReportError(
                f"Dagster at {self.base_url} redirected to "
                f"{urlsplit(exc.location).netloc or exc.location}; not followed (set the final "
                "URL as the Dagster URL)"
            ) from None
        except urllib.error.HTTPError as exc:
            raise ReportError(f"Dagster answered HTTP {exc.code}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ReportError(f"Dagster at {self.base_url} is unreachable ({reason})") from exc


class PipesReporter:
    """When Dagster launched the agent: the report travels as a Pipes custom message."""

    def __init__(self, context: Any) -> None:
        self.context = context

    def deliver(self, asset_key: str, body: dict[str, Any]) -> None:
        self.context.report_custom_message(
            {"kind": PIPES_MESSAGE_KIND, "asset_key": asset_key, **body}
        )


def flush_outbox(store: ControlStore, reporter: Reporter, batch: int = 200) -> tuple[int, int]:
    """Deliver queued reports until the queue is empty or Dagster fails; (delivered, left).

    A report for an hour that has not begun (this node's clock runs ahead) is not a Dagster
    partition yet: it stays queued until its hour begins, and the rest are delivered.
    """
    delivered = 0
    while True:
        reports = store.take_reports(batch)
        if not reports:
            break
        for index, report in enumerate(reports):
            partition = report.body.get("partition")
            begins = partition_hour(partition) if partition else None
            if begins is not None and begins > datetime.now(UTC):
                store.defer_report(report.id, begins.timestamp())
                log.warning(
                    "report for %s %s held until that hour begins (node clock ahead?)",
                    report.asset_key,
                    report.body["partition"],
                )
                continue
            try:
                reporter.deliver(report.asset_key, report.body)
            except ReportError as exc:
                store.report_failed(report.id, str(exc))
                for unsent in reports[index + 1 :]:
                    store.report_failed(unsent.id, "not attempted")
                left = store.pending_reports()
                log.warning("%s; %d report(s) stay queued for the next cycle", exc, left)
                return delivered, left
            store.report_delivered(report.id)
            delivered += 1
    return delivered, store.pending_reports()
