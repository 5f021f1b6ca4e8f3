"""Reports each uploaded object to Dagster as a materialization of `landing/<scenario>`.

Reports are queued in the node database with the watermark (the outbox), then delivered over
HTTP to the webserver's `/report_asset_materialization/` endpoint, or over Dagster Pipes when
Dagster launched the agent. A transient failure (Dagster down, 5xx, 408, 429, a timeout) or a
setup error (401, 403, 404, 405, 407: a token, the URL, a proxy) leaves the report queued for
the next cycle; a report Dagster refuses for good (another 4xx, such as 400 or 422) is tried a
configured number of times, then moved to the dead letters so the reports after it flow.
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn, Protocol
from urllib.parse import unquote, urlsplit

from edge_agent.contract import PIPES_MESSAGE_KIND, partition_hour
from edge_agent.control import ControlStore, OutboxReport
from edge_agent.secrets import redact_url, split_userinfo
from edge_agent.storage import StoredObject

log = logging.getLogger("edge_agent")

# Added to a claim's hold beyond the worst case, for the database and the clock.
CLAIM_MARGIN_SECONDS = 30.0
# Client errors that are not about the report, retried like a 5xx and never dead-lettered:
# timing (408, 429), and the agent's own setup (a token, the URL or a proxy: 401, 403, 404,
# 405, 407), where every report would be refused alike until an operator fixes it.
_TRANSIENT_4XX = frozenset({408, 429, 401, 403, 404, 405, 407})


class ReportError(Exception):
    """A failed delivery; `status` is Dagster's HTTP status when it answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def permanent(self) -> bool:
        """Dagster refused this report (sending it again as it is will not help)."""
        status = self.status
        return status is not None and 400 <= status < 500 and status not in _TRANSIENT_4XX


class Reporter(Protocol):
    # The longest one delivery can take: claims on queued reports are sized from it.
    max_seconds_per_report: float

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
    """POSTs to the Dagster webserver. Dagster+ needs an API token; OSS has no auth at all, so
    a proxy in front of it may ask for a user and password: given in the URL
    (`https://user:password@host`), they are sent as HTTP Basic auth and never printed.

    A redirect is a failed delivery, never followed: the token stays with the configured host.
    """

    def __init__(self, base_url: str, token: str | None, timeout: float) -> None:
        bare, userinfo = split_userinfo(base_url.rstrip("/"))
        self.base_url = bare
        self.display_url = redact_url(base_url.rstrip("/"))
        self.token = token
        self.timeout = timeout
        # urllib waits up to `timeout` to connect, then up to `timeout` for the answer.
        self.max_seconds_per_report = 2 * timeout
        self._opener = urllib.request.build_opener(_NoRedirects())
        self._basic_auth = (
            "Basic " + base64.b64encode(unquote(userinfo).encode()).decode() if userinfo else None
        )
        if (token or userinfo) and urlsplit(bare).scheme == "http" and not _is_loopback(bare):
            log.warning(
                "the Dagster %s goes to %s over plain http; use https",
                "API token" if token else "password",
                urlsplit(bare).hostname,
            )

    def deliver(self, asset_key: str, body: dict[str, Any]) -> None:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Dagster-Cloud-Api-Token"] = self.token
        if self._basic_auth:
            headers["Authorization"] = self._basic_auth
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
                f"Dagster at {self.display_url} redirected to "
                f"{urlsplit(redact_url(exc.location)).netloc or exc.location}; not followed (set "
                "the final URL as the Dagster URL)"
            ) from None
        except urllib.error.HTTPError as exc:
            raise ReportError(
                f"Dagster answered HTTP {exc.code}{_answer(exc)}", status=exc.code
            ) from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ReportError(f"Dagster at {self.display_url} is unreachable ({reason})") from exc


def _answer(exc: urllib.error.HTTPError) -> str:
    """The start of Dagster's explanation, on one line, for the log and the dead letter."""
    try:
        text = exc.read(300).decode("utf-8", "replace")
    except OSError:
        return ""
    text = " ".join(text.split())
    return f": {text[:200]}" if text else ""


class PipesReporter:
    """When Dagster launched the agent: the report travels as a Pipes custom message."""

    max_seconds_per_report = 10.0  # a line written to the launching process' message channel

    def __init__(self, context: Any) -> None:
        self.context = context

    def deliver(self, asset_key: str, body: dict[str, Any]) -> None:
        self.context.report_custom_message(
            {"kind": PIPES_MESSAGE_KIND, "asset_key": asset_key, **body}
        )


@dataclass(frozen=True)
class FlushResult:
    delivered: int
    pending: int  # still queued: Dagster unreachable, or an hour that has not begun
    dead_letters: int  # all reports in the dead letters, not only this flush's


def flush_outbox(
    store: ControlStore, reporter: Reporter, max_attempts: int = 5, batch: int = 200
) -> FlushResult:
    """Offer every queued report once, until the queue is done or Dagster is unreachable.

    Reports are claimed `batch` at a time for longer than sending the batch can take (the
    reporter's worst case per report, times the batch, plus a margin), and each claim is
    renewed right before its report goes out: another agent on the node never sends a report
    this one is sending. A report for an hour that has not begun (this node's clock runs ahead)
    is not a Dagster partition yet: it stays queued until its hour begins. A report Dagster
    refuses is skipped, so the ones after it flow; after `max_attempts` refusals it moves to
    the dead letters.
    """
    hold = batch * reporter.max_seconds_per_report + CLAIM_MARGIN_SECONDS
    renewal = reporter.max_seconds_per_report + CLAIM_MARGIN_SECONDS
    delivered, after = 0, 0
    while reports := store.take_reports(batch, hold, after_id=after):
        after = reports[-1].id
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
            if not store.renew_report(report.id, renewal):
                log.warning(
                    "%s: claim lapsed before sending; left to its new holder", _name(report)
                )
                continue
            try:
                reporter.deliver(report.asset_key, report.body)
            except ReportError as exc:
                if exc.permanent:
                    _refused(store, report, exc, max_attempts)
                    continue
                store.report_failed(report.id, str(exc), exc.status)
                store.release_reports([unsent.id for unsent in reports[index + 1 :]])
                left = store.pending_reports()
                log.warning("%s; %d report(s) stay queued for the next cycle", exc, left)
                return FlushResult(delivered, left, store.dead_letter_count())
            store.report_delivered(report.id)
            delivered += 1
    return FlushResult(delivered, store.pending_reports(), store.dead_letter_count())


def _name(report: OutboxReport) -> str:
    return f"report #{report.id} for {report.asset_key} {report.body.get('partition', '')}".rstrip()


def _refused(
    store: ControlStore, report: OutboxReport, exc: ReportError, max_attempts: int
) -> None:
    assert exc.status is not None
    refusals = store.report_rejected(report.id, exc.status, str(exc), max_attempts)
    if refusals >= max_attempts:
        log.warning(
            "%s dead-lettered after %d refusal(s), the last: %s; kept in the node database "
            "('edge-agent reports requeue' queues it again)",
            _name(report),
            refusals,
            exc,
        )
    else:
        log.warning(
            "%s refused (try %d of %d): %s; the reports after it go on",
            _name(report),
            refusals,
            max_attempts,
            exc,
        )
