"""Binary COPY of an Arrow stream into Postgres over several connections at once.

One connection's COPY keeps one server backend busy; the server parses, writes heap and WAL for
it on one core. Feeding the same table over `connections` COPYs lets the server use more cores
while this process produces the batches. Each connection commits its share: only tables nobody
reads yet (staging tables) may be loaded this way, and the caller publishes them afterwards.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import adbc_driver_postgresql.dbapi as adbc
import pyarrow as pa

QUEUE_BATCHES = 2  # batches waiting per connection; bounds memory to a few batches
_DONE = object()


class _AbortedError(Exception):
    """The producer failed: the COPYs stop and nothing is committed."""


def copy_arrow(uri: str, reader: pa.RecordBatchReader, schema: str, table: str,
               connections: int = 2) -> int:  # fmt: skip
    """Append every batch of `reader` to `schema.table`; the rows written.

    Batches go round-robin to `connections` ADBC connections. If reading fails, or any COPY
    fails, every connection rolls back its share and the first error is raised.
    """
    if connections <= 1:
        return _copy_one(uri, reader, schema, table)
    feeds: list[queue.Queue[Any]] = [queue.Queue(QUEUE_BATCHES) for _ in range(connections)]
    rows = [0] * connections
    errors: list[BaseException] = []
    failed = threading.Event()

    def load(i: int) -> None:
        try:
            stream = pa.RecordBatchReader.from_batches(reader.schema, _drain(feeds[i]))
            rows[i] = _copy_one(uri, stream, schema, table)
        except BaseException as exc:  # raised again in the caller's thread
            errors.append(exc)
            failed.set()
            _discard(feeds[i])

    workers = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(connections)]
    for worker in workers:
        worker.start()
    try:  # every consumer takes from its queue until it sees an end, so puts never hang
        for n, batch in enumerate(reader):
            if failed.is_set():
                break
            feeds[n % connections].put(batch)
    except BaseException as exc:
        errors.insert(0, exc)
        failed.set()
    for feed in feeds:
        feed.put(_AbortedError() if failed.is_set() else _DONE)
    for worker in workers:
        worker.join()
    real = [e for e in errors if not isinstance(e, _AbortedError)]
    if real:
        raise real[0]
    return sum(rows)


def _copy_one(uri: str, stream: Any, schema: str, table: str) -> int:
    with adbc.connect(uri) as conn:
        with conn.cursor() as cursor:
            rows = cursor.adbc_ingest(table, stream, mode="append", db_schema_name=schema)
        conn.commit()
    return int(rows)


def _drain(feed: queue.Queue[Any]) -> Iterator[pa.RecordBatch]:
    while True:
        item = feed.get()
        if item is _DONE:
            return
        if isinstance(item, BaseException):
            raise item  # the COPY fails and rolls back
        yield item


def _discard(feed: queue.Queue[Any]) -> None:
    """A failed consumer keeps emptying its queue so the producer never blocks on it."""
    while True:
        item = feed.get()
        if item is _DONE or isinstance(item, BaseException):
            return
