"""How long handler logs are kept: RELAY_LOG_RETENTION_DAYS (the hourly `logs_prune` task) and at most
RELAY_LOG_MAX_LINES_PER_TRIGGER per trigger (enforced by the collector as it writes, triggers/cluster/logs.py,
and here for what it missed). Both delete in batches through an index (LogLine.prune_older, LogLine.trim);
tests/bench/bench_logs.py measures them at volume."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from triggers.models import LogLine


def logs_prune() -> int:
    """Delete lines past the retention period; returns how many."""
    return LogLine.prune_older(timezone.now() - timedelta(days=settings.RELAY_LOG_RETENTION_DAYS))
