"""Enqueue a task of triggers.tasks by its name.

triggers.tasks is the worker's entry point: it imports the services and the capability packages, so they never
import it back (no import circle goes through it). They send its tasks by name instead, with the options
`Task.apply_async` takes from the settings (CELERY_TASK_DEFAULT_PRIORITY, CELERY_TASK_SERIALIZER), so the
message is the one `triggers.tasks.<name>.apply_async(...)` would send. The task names do not change.
"""

from __future__ import annotations

from celery import current_app

TASKS = "triggers.tasks."


def enqueue(task: str, *args, **options):
    """Send triggers.tasks.<task>(*args); options (countdown=, priority=, producer=…) as for apply_async."""
    conf = current_app.conf
    if conf.task_default_priority is not None:
        options.setdefault("priority", conf.task_default_priority)
    options.setdefault("serializer", conf.task_serializer)
    return current_app.send_task(TASKS + task, args=args, **options)


def celery_app():
    """The Celery app (relayweb's, set as current): its broker connections and settings."""
    return current_app._get_current_object()
