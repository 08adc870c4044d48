"""Group commit for delivery rows written from the ingress's event loop.

Rows are inserted together (one round trip for many webhooks): `add()` does not wait (sync mode records
the outcome after answering) and gives the batch a few milliseconds to fill; `store()` waits until its
row is committed (async mode answers 202 only then; a duplicate provider id raises DuplicateDelivery, a
trigger deleted meanwhile TriggerGone) and starts a write at once, the rows arriving meanwhile going into
the next one. One row never fails another: a failed batch is written again in parts (`_write`).

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
import re
from datetime import datetime

from asgiref.sync import sync_to_async
from django.db import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connections,
    router,
    transaction,
)
from django.utils import timezone

from triggers.enqueue import enqueue
from triggers.live import broadcast
from triggers.models import Delivery, Trigger

log = logging.getLogger(__name__)
_DELIVERY_FIELDS = Delivery._meta.concrete_fields
DEDUPE_CONSTRAINT = "one_delivery_per_provider_id"
REDELIVERY_CONSTRAINT = "one_redelivery_in_flight"  # a repeat after a failure: one in flight at a time


class DuplicateDelivery(IntegrityError):
    """The row repeats a provider delivery id its trigger already has (the dedupe constraint)."""


class RowNotStored(Exception):
    """The database refused the row for a reason other than a duplicate, even with its values cut to fit."""


class TriggerGone(RowNotStored):
    """The row's trigger was deleted (while the ingress still had its route cached)."""


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
        busy ingress costs a few group sends a second, not one per batch (the events are not thinned).

        It runs until nothing is left to send: rows of a batch committed while a send is on its way find this
        task still running and start no other, so it must take them too (else the last deliveries of a burst
        would wait for the next delivery to be shown)."""
        while self._live:
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

    When that fails, no row fails another: the rows are written again in halves, down to the ones that fail
    alone (a few statements for one bad row among hundreds). A row that fails alone because the database
    refuses one of its values is stored cut to fit and flagged (`_fit`); one that still cannot be stored is
    returned, by id(row), as DuplicateDelivery (the provider delivery id is taken), TriggerGone or RowNotStored.
    A lost connection is raised: it fails the batch, not a row.
    """
    inserts = [row for row, _, _, update in batch if not update]
    updates = [row for row, _, _, update in batch if update]
    try:
        with transaction.atomic():
            insert_rows(Delivery, inserts)
            for row in updates:
                _record_outcome(row)
        return {}
    except Exception as e:  # a duplicate id, a value the database refuses, a trigger deleted meanwhile
        _raise_if_unreachable(e)
    failures: dict[int, Exception] = {}
    unsettled = {id(row): row for row in [*inserts, *updates]}
    try:
        _insert_apart(inserts, failures, unsettled)
        for row in updates:  # claimed rows are already stored: their outcome is written alone
            _write_alone(row, _record_outcome, OUTCOME_FIELDS, failures, unsettled)
    except (OperationalError, InterfaceError) as e:  # unreachable: the rows written so far are stored, not the rest
        failures.update(dict.fromkeys(unsettled, e))
    return failures


def _insert_apart(rows: list, failures: dict, unsettled: dict) -> None:
    """Rows whose insert together failed: each half is tried on its own, down to single rows."""
    if not rows:
        return
    if len(rows) == 1:
        _write_alone(rows[0], lambda row: insert_rows(Delivery, [row]), None, failures, unsettled)
        return
    for part in (rows[: len(rows) // 2], rows[len(rows) // 2:]):
        try:
            with transaction.atomic():
                insert_rows(Delivery, part)
        except Exception as e:
            _raise_if_unreachable(e)
            _insert_apart(part, failures, unsettled)
        else:
            for row in part:
                unsettled.pop(id(row), None)


def _write_alone(row, write, names, failures: dict, unsettled: dict) -> None:
    """Write one row; if the database refuses a value, once more with its values cut to fit and flagged."""
    fitted = False
    while True:
        try:
            with transaction.atomic():
                write(row)
            break
        except IntegrityError as e:
            failures[id(row)] = _classified(row, e)
            break
        except Exception as e:  # DataError: too long for its column, NUL in text (PostgreSQL); unencodable text
            _raise_if_unreachable(e)
            if fitted or not _fit(row, names):
                failures[id(row)] = _not_stored(row, e)
                break
            fitted = True
    unsettled.pop(id(row), None)
    if fitted and id(row) not in failures:
        log.warning("delivery writer: delivery %s stored cut to fit: %s", row.pk, row.record_note)


def _raise_if_unreachable(error: Exception) -> None:
    """A lost connection, or SQLite's wait for its lock running out, fails the batch: no row can be written now.
    An OperationalError on a PostgreSQL connection that still answers is a row's (its COPY was aborted by a
    value the driver cannot encode)."""
    if isinstance(error, InterfaceError):
        raise error
    if isinstance(error, OperationalError):
        connection = connections[router.db_for_write(Delivery)]
        if connection.vendor != "postgresql" or connection.connection is None or not connection.is_usable():
            raise error


def _classified(row, error: IntegrityError) -> Exception:
    """Only the dedupe constraints mean a duplicate (the provider delivery id is taken, or a redelivery of it is
    in flight); a missing trigger is TriggerGone; anything else is not a duplicate either (the row was refused
    for another reason)."""
    text = str(error)
    constraint = getattr(getattr(error.__cause__, "diag", None), "constraint_name", None)  # PostgreSQL
    if constraint in (DEDUPE_CONSTRAINT, REDELIVERY_CONSTRAINT) or ("UNIQUE constraint failed" in text and (
            "provider_delivery_id" in text or "redelivery_of_id" in text)):
        classified = DuplicateDelivery(text)
    elif not Trigger.objects.filter(pk=row.trigger_id).exists():
        classified = TriggerGone(f"trigger {row.trigger_id} no longer exists")
    else:
        return _not_stored(row, error)
    classified.__cause__ = error
    return classified


def _not_stored(row, error: Exception) -> RowNotStored:
    log.warning("delivery writer: delivery %s could not be stored: %s", row.pk, error)
    failure = RowNotStored(f"delivery {row.pk} could not be stored: {error}")
    failure.__cause__ = error
    return failure


def _record_outcome(row) -> None:
    """The outcome of a sync delivery claimed before forwarding (a provider delivery id). Its one attempt is
    the row's own outcome (Delivery.attempt_history): no DeliveryAttempt row, half the rows per webhook."""
    names = [*OUTCOME_FIELDS, "truncated", "record_note"] if row.truncated else OUTCOME_FIELDS
    Delivery.objects.filter(pk=row.pk).update(**{name: getattr(row, name) for name in names})


# ---------------------------------------------------------------- rows the database refuses as they are

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # NUL (PostgreSQL text and jsonb), unpaired surrogates (UTF-8)
_TEXT_FIELDS = [(f.attname, f.max_length) for f in _DELIVERY_FIELDS
                if f.get_internal_type() in ("CharField", "TextField") and not f.choices]
_JSON_FIELDS = [f.attname for f in _DELIVERY_FIELDS if f.get_internal_type() == "JSONField"]


def _fit(row, names=None) -> bool:
    """Make the row's values storable: unstorable characters become U+FFFD, text longer than its column is cut.
    Flags the row (truncated, record_note says what changed); False if nothing needed changing."""
    notes = []
    for name, limit in _TEXT_FIELDS:
        value = getattr(row, name)
        if (names is not None and name not in names) or not isinstance(value, str):
            continue
        if _UNSTORABLE.search(value):
            value = _UNSTORABLE.sub("\ufffd", value)
            notes.append(f"{name}: characters the database refuses replaced by U+FFFD")
        if limit and len(value) > limit:
            notes.append(f"{name}: {len(value)} characters cut to {limit}")
            value = value[:limit]
        setattr(row, name, value)
    for name in _JSON_FIELDS:
        if names is None or name in names:
            value = _clean_json(getattr(row, name))
            if value != getattr(row, name):
                notes.append(f"{name}: characters the database refuses replaced by U+FFFD")
                setattr(row, name, value)
    if notes:
        row.truncated = True
        row.record_note = "; ".join(filter(None, [row.record_note, *notes]))
    return bool(notes)


def _clean_json(value):
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, list | tuple):
        return [_clean_json(v) for v in value]
    if isinstance(value, dict):
        return {_clean_json(k): _clean_json(v) for k, v in value.items()}
    return value


def _enqueue(delivery_ids: list[str]) -> None:
    enqueue("deliveries_dispatch", delivery_ids)


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
    await broadcast.send_many(messages)  # bounded: a batch may name more tenants than the layer has connections
