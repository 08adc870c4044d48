"""The Celery app: configured from Django settings (every CELERY_* setting), tasks autodiscovered."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "relayweb.settings")

app = Celery("relayweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
