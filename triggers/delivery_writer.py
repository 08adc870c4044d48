"""Group commit for delivery rows written from the ingress's event loop.

Rows are inserted together (one round trip for many webhooks): `add()` does not wait (sync mode records
the outcome after answering) and gives the batch a few milliseconds to fill; `store()` waits until its
row is committed (async mode answers 202 only then; a duplicate provider id raises IntegrityError) and
starts a write at once, the rows arriving meanwhile going into the next one.

Rows are `DeliveryRecord`s, not model instances (Model.__init__ alone cost ~30 µs a webhook), and reach
PostgreSQL through COPY (half the CPU of a multi-row INSERT). After the commit: the async rows' Celery
message, and the live "delivery" events, sent to each tenant's group every `live_interval`.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import logging
from datetime import datetime

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import IntegrityError, close_old_connections, connections, router, transaction
from django.utils import timezone

from . import broadcast
from .models import Delivery

log = logging.getLogger(__name__)
_DELIVERY_FIELDS = Delivery._meta.concrete_fields


class DeliveryRecord:
    """A Delivery row as the hot path builds it: the model's columns (attnames) with its defaults."""

    __slots__ = (*(f.attname for f in _DELIVERY_FIELDS), "tenant_id")
    _static = [(f.attname, f.default) for f in _DELIVERY_FIELDS if f.has_default() and not callable(f.default)]
    _static += [(f.attname, None) for f in _DELIVERY_FIELDS if not f.has_default()]
    _dynamic = [(f.attname, f.default) for f in _DELIVERY_FIELDS if f.has_default() and callable(f.default)]

    def __init__(self, **values):
        for name, default in self._static:
            setattr(self, name, default)
        for name, factory in self._dynamic:
            if name not in values:
                setattr(self, name, factory())
        self.tenant_id = None
        for name, value in values.items():
            setattr(self, name, value)

    @property
    def pk(self):
        return self.id

    def to_model(self) -> Delivery:
        return Delivery(**{f.attname: getattr(self, f.attname) for f in _DELIVERY_FIELDS})


OUTCOME_FIELDS = ["state", "response_status", "response_headers", "response_body", "latency_ms", "attempts", "error"]


class DeliveryWriter:
    def __init__(self, window: float = 0.005, max_batch: int = 500, live_interval: float = 0.25):
        self.window, self.max_batch, self.live_interval = window, max_batch, live_interval
        self.pending: list[tuple[DeliveryRecord, asyncio.Future | None, bool, bool]] = []
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._writing = 0
        self._waited = False  # a row in `pending` has a waiter
        self._live: list[DeliveryRecord] = []  # written, their "delivery" events not sent yet
        self._live_task: asyncio.Task | None = None

    @property
    def idle(self) -> bool:
        """Nothing queued and no batch being written (live events may still be on their way)."""
        return not self.pending and not self._writing

    def add(self, row: DeliveryRecord, update: bool = False) -> None:
        self._queue(row, None, False, update)

    async def store(self, row: DeliveryRecord, enqueue: bool = False) -> None:
        future = asyncio.get_running_loop().create_future()
        self._queue(row, future, enqueue, False)
        await future

    def _queue(self, row, future, enqueue, update) -> None:
        self.pending.append((row, future, enqueue, update))
        if future is not None:
            self._waited = True
        if self._task is None or self._task.done():
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._wakeup.set()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            # Somebody waits for a commit: write now (what arrives meanwhile goes into the next batch).
            # Nobody waits: let the batch fill for a few milliseconds (fewer, larger transactions).
            await asyncio.sleep(0 if self._waited else self.window)
            while self.pending:
                self._waited = False
                batch, self.pending = self.pending[: self.max_batch], self.pending[self.max_batch:]
                self._writing += 1
                try:
                    failures = await sync_to_async(_write_in_thread, thread_sensitive=False)(batch)
                except Exception as e:  # the database is down: fail the waiters, keep serving
                    log.exception("delivery writer: batch of %d failed", len(batch))
                    failures = {id(row): e for row, *_ in batch}
                for row, future, _, _ in batch:
                    if future is None or future.done():
                        continue
                    error = failures.get(id(row))
                    if error:
                        future.set_exception(error)
                    else:
                        future.set_result(None)
                # The waiters have their answer; the live events and the Celery message follow.
                asyncio.get_running_loop().create_task(self._after_commit(batch, failures))

    async def _after_commit(self, batch, failures: dict[int, Exception]) -> None:
        """Queue the live "delivery" events; one broker message for the async rows."""
        try:
            self._live += [row for row, *_ in batch if id(row) not in failures and row.tenant_id]
            if self._live and (self._live_task is None or self._live_task.done()):
                self._live_task = asyncio.get_running_loop().create_task(self._send_live())
            enqueue = [str(row.pk) for row, _, should, _ in batch if should and id(row) not in failures]
            if enqueue:  # a worker fans it out; if this publish is lost, the sweep finds the rows overdue
                await sync_to_async(_enqueue, thread_sensitive=False)(enqueue)
        except Exception:
            log.warning("delivery writer: live events or the Celery message of a batch were not sent", exc_info=True)
        finally:
            self._writing -= 1

    async def _send_live(self) -> None:
        """Every `live_interval`, one channel-layer message per tenant with all of its new deliveries: a
        busy ingress costs a few group sends a second, not one per batch (the events are not thinned)."""
        await asyncio.sleep(self.live_interval)
        rows, self._live = self._live, []
        try:
            await _send_all(broadcast.delivery_messages(rows))
        except Exception:  # the page reconnects and gets a snapshot
            log.warning("delivery writer: %d live events were not sent", len(rows), exc_info=True)

    async def close(self) -> None:
        if self.pending:
            batch, self.pending = self.pending, []
            self._writing += 1
            await self._after_commit(batch, await sync_to_async(_write_in_thread, thread_sensitive=False)(batch))
        if self._task is not None:
            self._task.cancel()
        if self._live_task is not None and not self._live_task.done():
            self._live_task.cancel()
            rows, self._live = self._live, []
            await _send_all(broadcast.delivery_messages(rows))


def _write_in_thread(batch) -> dict[int, Exception]:
    close_old_connections()  # a thread of the ingress, outside Django's request cycle
    return _write(batch)


def _write(batch) -> dict[int, Exception]:
    """Insert the new rows and update the outcomes of claimed ones, in one transaction.
    Returns the rows that failed (a duplicate provider delivery id), by id(row)."""
    failures: dict[int, Exception] = {}
    inserts = [row for row, _, _, update in batch if not update]
    try:
        with transaction.atomic():
            insert_rows(Delivery, inserts)
            _record_outcomes(batch)
        return failures
    except IntegrityError:  # a duplicate provider id in the batch: find it row by row
        pass
    for row in inserts:
        try:
            with transaction.atomic():
                row.to_model().save(force_insert=True)
        except IntegrityError as e:
            failures[id(row)] = e
    with transaction.atomic():
        _record_outcomes(batch)
    return failures


def _record_outcomes(batch) -> None:
    """Outcomes of sync deliveries claimed before forwarding (a provider delivery id). Their one attempt is
    the row's own outcome (Delivery.attempt_history): no DeliveryAttempt row, half the rows per webhook."""
    for row, _, _, update in batch:
        if update:  # claimed rows are already stored: never among the inserts that can fail
            Delivery.objects.filter(pk=row.pk).update(**{name: getattr(row, name) for name in OUTCOME_FIELDS})


def _enqueue(delivery_ids: list[str]) -> None:
    from .tasks import deliveries_dispatch

    deliveries_dispatch.apply_async((delivery_ids,))


def insert_rows(model, rows: list) -> None:
    """Insert rows (model instances or DeliveryRecords, defaults applied) in one statement: no signals, no
    returned ids, what bulk_create does minus its per-value SQL compilation.

    PostgreSQL: COPY (text format, each column encoded once by its field type); SQLite: executemany.
    """
    if not rows:
        return
    connection = connections[router.db_for_write(model)]
    fields = [f for f in model._meta.concrete_fields if not (f.primary_key and f.db_returning)]
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    with connection.cursor() as cursor, connection.wrap_database_errors:  # driver errors as Django's
        if connection.vendor == "postgresql":
            encoders = [(f.attname, _copy_encoder(f)) for f in fields]
            data = "".join("\t".join([encode(getattr(row, name)) for name, encode in encoders]) + "\n"
                           for row in rows)
            cursor.cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN", io.StringIO(data))
        else:
            values = [tuple(f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields) for row in rows]
            marks = ", ".join(["%s"] * len(fields))
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", values)


# ---------------------------------------------------------------- COPY text format (PostgreSQL)

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_json = json.JSONEncoder(ensure_ascii=False).encode


def _copy_text(value: str) -> str:
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


@functools.cache  # one encoder per field, built once, not per batch
def _copy_encoder(field):
    """value -> COPY text for one column; None is NULL (\\N) whatever the type."""
    kind = field.get_internal_type()
    if kind == "BinaryField":
        encode = lambda v: "\\\\x" + bytes(v).hex()  # noqa: E731 - bytea hex input, backslash escaped
    elif kind == "JSONField":
        dumps = field.encoder().encode if field.encoder else _json
        encode = lambda v: _copy_text(dumps(v))  # noqa: E731
    elif kind == "BooleanField":
        encode = lambda v: "t" if v else "f"  # noqa: E731
    elif kind == "DateTimeField":
        encode = lambda v: _aware(v).isoformat()  # noqa: E731
    elif kind in ("UUIDField", "FloatField") or kind.endswith("IntegerField") or kind.endswith("AutoField"):
        encode = str
    elif kind == "ForeignKey":
        return _copy_encoder(field.target_field)
    else:  # CharField, TextField and the like
        encode = lambda v: _copy_text(str(v))  # noqa: E731
    return lambda v: "\\N" if v is None else encode(v)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else timezone.make_aware(value)


async def _send_all(messages: list[tuple[str, dict]]) -> None:
    layer = get_channel_layer()
    results = await asyncio.gather(*(layer.group_send(group, message) for group, message in messages),
                                   return_exceptions=True)
    if any(isinstance(r, Exception) for r in results):
        log.warning("delivery writer: %d live events could not be sent", sum(isinstance(r, Exception) for r in results))
