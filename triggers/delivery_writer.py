"""Group commit for delivery rows written from the ingress's event loop.

Rows arriving within a few milliseconds are inserted together (one round trip for many webhooks).
`store()` waits until its row is committed (async mode answers 202 only then; a duplicate provider
id raises IntegrityError); `add()` does not wait (sync mode records the outcome after answering).
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.db import IntegrityError, close_old_connections, connections, router, transaction

from . import broadcast
from .models import Delivery, DeliveryAttempt

log = logging.getLogger(__name__)
OUTCOME_FIELDS = ["state", "response_status", "response_headers", "response_body", "latency_ms", "attempts", "error"]


class DeliveryWriter:
    def __init__(self, window: float = 0.005, max_batch: int = 500):
        self.window, self.max_batch = window, max_batch
        self.pending: list[tuple[Delivery, asyncio.Future | None, bool, bool]] = []
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._writing = 0

    @property
    def idle(self) -> bool:
        """Nothing queued and no batch being written."""
        return not self.pending and not self._writing

    def add(self, row: Delivery, update: bool = False) -> None:
        self._queue(row, None, False, update)

    async def store(self, row: Delivery, enqueue: bool = False) -> None:
        future = asyncio.get_running_loop().create_future()
        self._queue(row, future, enqueue, False)
        await future

    def _queue(self, row, future, enqueue, update) -> None:
        self.pending.append((row, future, enqueue, update))
        if self._task is None or self._task.done():
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._wakeup.set()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await asyncio.sleep(self.window)
            while self.pending:
                batch, self.pending = self.pending[: self.max_batch], self.pending[self.max_batch:]
                self._writing += 1
                try:
                    failures = await sync_to_async(_write_in_thread, thread_sensitive=False)(batch)
                except Exception as e:  # the database is down: fail the waiters, keep serving
                    log.exception("delivery writer: batch of %d failed", len(batch))
                    failures = {id(row): e for row, *_ in batch}
                finally:
                    self._writing -= 1
                for row, future, _, _ in batch:
                    if future is None or future.done():
                        continue
                    error = failures.get(id(row))
                    if error:
                        future.set_exception(error)
                    else:
                        future.set_result(None)

    async def close(self) -> None:
        if self.pending:
            batch, self.pending = self.pending, []
            await sync_to_async(_write, thread_sensitive=False)(batch)
        if self._task is not None:
            self._task.cancel()


def _write_in_thread(batch) -> dict[int, Exception]:
    close_old_connections()  # a thread of the ingress, outside Django's request cycle
    return _write(batch)


def _write(batch) -> dict[int, Exception]:
    """Insert new rows (one statement), update outcomes, enqueue async deliveries. Returns failures by row."""
    failures: dict[int, Exception] = {}
    inserts = [row for row, _, _, update in batch if not update]
    try:
        with transaction.atomic():
            insert_rows(Delivery, inserts)
    except IntegrityError:  # a duplicate provider id in the batch: find it row by row
        for row in inserts:
            try:
                with transaction.atomic():
                    row.save(force_insert=True)
            except IntegrityError as e:
                failures[id(row)] = e
    for row, _, _, update in batch:
        if update:
            Delivery.objects.filter(pk=row.pk).update(**{name: getattr(row, name) for name in OUTCOME_FIELDS})
    attempts = [
        DeliveryAttempt(delivery_id=row.pk, number=1, status=row.response_status, latency_ms=row.latency_ms,
                        error=row.error)
        for row, _, _, _ in batch if row.attempts and id(row) not in failures
    ]
    insert_rows(DeliveryAttempt, attempts, ignore_conflicts=True)
    written = [row for row, *_ in batch if id(row) not in failures and getattr(row, "tenant_id", None)]
    if written:  # live "delivery" events: one message per tenant, one trip to the channel layer for all
        async_to_sync(_send_all)(broadcast.delivery_messages(written))
    enqueue = [str(row.pk) for row, _, should, _ in batch if should and id(row) not in failures]
    if enqueue:  # one broker message for the batch; a worker fans it out (the sweep covers a lost one)
        from .tasks import deliveries_dispatch

        deliveries_dispatch.apply_async((enqueue,))
    return failures


def insert_rows(model, rows: list, ignore_conflicts: bool = False) -> None:
    """One multi-row INSERT of model instances, defaults already applied (no signals, no returned ids).

    What bulk_create does, minus its per-value SQL compilation: the statement is built once per shape
    and the values are adapted by the driver (PostgreSQL: execute_values; SQLite: executemany).
    """
    if not rows:
        return
    connection = connections[router.db_for_write(model)]
    fields = [f for f in model._meta.concrete_fields if not (f.primary_key and f.db_returning)]
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    values = [tuple(f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields) for row in rows]
    with connection.cursor() as cursor, connection.wrap_database_errors:  # driver errors as Django's
        if connection.vendor == "postgresql":
            from psycopg2.extras import execute_values

            conflict = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
            execute_values(cursor.cursor, f"INSERT INTO {table} ({columns}) VALUES %s{conflict}", values,
                           page_size=len(values))
        else:
            verb = "INSERT OR IGNORE" if ignore_conflicts else "INSERT"
            marks = ", ".join(["%s"] * len(fields))
            cursor.executemany(f"{verb} INTO {table} ({columns}) VALUES ({marks})", values)


async def _send_all(messages: list[tuple[str, dict]]) -> None:
    layer = get_channel_layer()
    results = await asyncio.gather(*(layer.group_send(group, message) for group, message in messages),
                                   return_exceptions=True)
    if any(isinstance(r, Exception) for r in results):
        log.warning("delivery writer: %d live events could not be sent", sum(isinstance(r, Exception) for r in results))
