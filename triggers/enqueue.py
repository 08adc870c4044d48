"""Enqueue a task of triggers.tasks by its name.

triggers.tasks is the worker's entry point: it imports the services and the capability packages, so they never
import it back (no import circle goes through it). They send its tasks by name instead, with the options
`Task.apply_async` takes from the settings (CELERY_TASK_DEFAULT_PRIORITY, CELERY_TASK_SERIALIZER), so the
message is the one `triggers.tasks.<name>.apply_async(...)` would send. The task names do not change.
"""

from __future__ import annotations

import logging
import uuid

import redis
from celery import current_app
from django.conf import settings

log = logging.getLogger(__name__)

TASKS = "triggers.tasks."


def enqueue(task: str, *args, **options):
    """Send triggers.tasks.<task>(*args); options (countdown=, priority=, producer=…) as for apply_async."""
    conf = current_app.conf
    if conf.task_default_priority is not None:
        options.setdefault("priority", conf.task_default_priority)
    options.setdefault("serializer", conf.task_serializer)
    return current_app.send_task(TASKS + task, args=args, **options)


def lease_key(task: str, pk: int) -> str:
    """The Redis key of the lease a leased task's run holds (task: its full name, triggers.tasks.<name>)."""
    return f"relayweb:lease:{task}:{pk}"


def lease_redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def lease_seconds() -> int:
    return max(1, settings.RELAY_STUCK_AFTER)


def enqueue_leased(task: str, pk: int) -> None:
    """Queue triggers.tasks.<task>(pk), leased to this run (tenant provisioning, tenant and trigger deletion:
    see triggers/tasks.py). With the broker down this raises (kombu's OperationalError; the web answers 503)
    and the periodic resume queues it once Redis is back."""
    run = str(uuid.uuid4())
    enqueue(task, pk, task_id=run)
    try:
        lease_redis().set(lease_key(TASKS + task, pk), run, ex=lease_seconds())
    except redis.RedisError as e:  # queued all the same; the resume may queue it once more (it is idempotent)
        log.warning("lease of %s(%s) not recorded: %s", task, pk, e)


def celery_app():
    """The Celery app (relayweb's, set as current): its broker connections and settings."""
    return current_app._get_current_object()
