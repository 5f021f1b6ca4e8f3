"""The upload cycle: claim id ranges, process them on a few threads, commit in order."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from edge_agent.batches import BatchContext, BatchResult, build_and_upload
from edge_agent.config import AgentConfig
from edge_agent.contract import landing_bucket_for
from edge_agent.control import Claim, ControlStore
from edge_agent.errors import AgentError
from edge_agent.reporting import Reporter, flush_outbox
from edge_agent.source import SourceReader, SourceTable

log = logging.getLogger("edge_agent")


@dataclass
class CycleSummary:
    rows_read: int = 0
    rows_uploaded: int = 0
    rows_rejected: int = 0
    rows_removed: int = 0
    objects: int = 0
    bytes_written: int = 0
    claims: int = 0
    seconds: float = 0.0
    watermark: int = 0
    reports_delivered: int = 0
    reports_pending: int = 0
    reports_dead_letters: int = 0

    def add(self, batch: BatchResult) -> None:
        self.rows_read += batch.rows_read
        self.rows_uploaded += batch.rows_uploaded
        self.rows_rejected += batch.rows_rejected
        self.rows_removed += batch.rows_removed
        self.objects += len(batch.objects)
        self.bytes_written += batch.bytes_written
        self.claims += 1


class Uploader:
    """One agent process's view of a node: its config, database and destination."""

    def __init__(
        self,
        config: AgentConfig,
        store: ControlStore,
        source: SourceTable,
        context: BatchContext,
        reporter: Reporter | None,
    ) -> None:
        self.config = config
        self.store = store
        self.source = source
        self.context = context
        self.reporter = reporter
        self._local = threading.local()
        self._readers: list[SourceReader] = []
        self._readers_lock = threading.Lock()

    def bucket_for(self, scenario: str) -> str:
        region = (
            self.context.region if scenario == "regional" else self.config.scenario_bucket_region
        )
        return landing_bucket_for(scenario, self.config.bucket_prefix, region)

    def _reader(self) -> SourceReader:
        reader = getattr(self._local, "reader", None)
        if reader is None:
            assert self.config.db is not None
            reader = SourceReader(Path(self.config.db), self.source)
            self._local.reader = reader
            with self._readers_lock:
                self._readers.append(reader)
        return reader

    def _process(self, claim: Claim) -> BatchResult:
        self.context.store.check_bucket(claim.bucket)
        rows = self._reader().read(claim.start_key, claim.end_key, claim.row_count)
        return build_and_upload(claim, rows, self.context)

    def _claim(self) -> Claim | None:
        claim = self.store.claim_next(
            self.source, self.config.batch_rows, self.bucket_for, self.config.lease_seconds
        )
        if claim is None or not claim.redo:
            return claim
        wanted = self.bucket_for(claim.pipeline_type)
        # A claim is redone into its own bucket, so a retry overwrites its own objects. But a
        # bucket that does not exist holds none of them (a prefix typo, since corrected): the
        # claim follows the configuration, and is still uploaded exactly once.
        if wanted != claim.bucket and not self.context.store.bucket_exists(claim.bucket):
            log.warning(
                "rows %d..%d were claimed for bucket %s, which does not exist and holds none "
                "of them: uploading them to %s",
                claim.start_key + 1, claim.end_key, claim.bucket, wanted,
            )  # fmt: skip
            claim = self.store.move_claim(claim, wanted)
        return claim

    def run_cycle(self) -> CycleSummary:
        """Upload everything after the watermark, in bounded claims, then flush reports."""
        started = time.perf_counter()
        summary = CycleSummary()
        execution = self.store.start_execution(self.store.get_pipeline().pipeline_type)
        backlog = self.store.backlog(self.source)
        if backlog:
            log.info("%s rows to upload from table %s", f"{backlog:,}", self.source.name)
        error: BaseException | None = None
        try:
            self._drain(summary, backlog)
        except BaseException as exc:
            error = exc
            self.store.release_claims()
        finally:
            self._close_readers()
            summary.seconds = time.perf_counter() - started
            summary.watermark = self.store.watermark(self.source.name)
            self.store.finish_execution(
                execution,
                status="failed" if error else "success",
                rows_read=summary.rows_read,
                rows_uploaded=summary.rows_uploaded,
                rows_rejected=summary.rows_rejected,
                objects_written=summary.objects,
                error=str(error) if error else None,
            )
        if error is not None:
            raise error
        if self.reporter is not None:
            flushed = flush_outbox(self.store, self.reporter, self.config.report_max_attempts)
            summary.reports_delivered = flushed.delivered
            summary.reports_pending = flushed.pending
            summary.reports_dead_letters = flushed.dead_letters
        return summary

    def _drain(self, summary: CycleSummary, backlog: int) -> None:
        workers = self.config.workers
        with ThreadPoolExecutor(workers, thread_name_prefix="edge-upload") as pool:
            in_flight: dict[Future[BatchResult], Claim] = {}
            exhausted = False
            failure: BaseException | None = None
            while True:
                while not exhausted and failure is None and len(in_flight) < workers:
                    claim = self._claim()
                    if claim is None:
                        exhausted = True
                        break
                    if claim.redo:
                        log.info(
                            "redoing ids %d..%d left unfinished by an earlier attempt",
                            claim.start_key + 1,
                            claim.end_key,
                        )
                    in_flight[pool.submit(self._process, claim)] = claim
                if not in_flight:
                    break
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    claim = in_flight.pop(future)
                    try:
                        batch = future.result()
                    except BaseException as exc:  # keep draining what is in flight
                        failure = failure or exc
                        continue
                    watermark = self.store.complete_claim(claim, self._reports(batch))
                    summary.add(batch)
                    self._log_batch(batch, summary, backlog, watermark)
            if failure is not None:
                raise failure

    def _reports(self, batch: BatchResult) -> list[tuple[str, dict[str, object]]]:
        return batch.reports if self.reporter is not None else []

    def _log_batch(
        self, batch: BatchResult, summary: CycleSummary, backlog: int, watermark: int
    ) -> None:
        claim = batch.claim
        extra = []
        if batch.rows_rejected:
            extra.append(f"{batch.rows_rejected} rejected")
        if batch.rows_removed:
            extra.append(f"{batch.rows_removed} removed by {claim.pipeline_type} rules")
        log.info(
            "ids %d..%d: %d rows -> %d object(s), %.1f MB in s3://%s [%s]%s; %s/%s rows done, "
            "watermark %d",
            claim.start_key + 1,
            claim.end_key,
            batch.rows_uploaded,
            len(batch.objects),
            batch.bytes_written / 1e6,
            claim.bucket,
            claim.pipeline_type,
            f" ({', '.join(extra)})" if extra else "",
            f"{summary.rows_read:,}",
            f"{max(backlog, summary.rows_read):,}",
            watermark,
        )

    def _close_readers(self) -> None:
        with self._readers_lock:
            for reader in self._readers:
                reader.close()
            self._readers.clear()
        self._local = threading.local()


def run_forever(uploader: Uploader, interval: float, stop: threading.Event) -> None:
    """Service mode: a failed cycle is logged and retried after the interval."""
    while not stop.is_set():
        try:
            summary = uploader.run_cycle()
            if summary.claims:
                log.info(
                    "cycle done: %s rows in %d object(s) in %.1fs",
                    f"{summary.rows_uploaded:,}",
                    summary.objects,
                    summary.seconds,
                )
        except AgentError as exc:
            log.error("cycle failed: %s; retrying in %.0fs", exc, interval)
        stop.wait(interval)
