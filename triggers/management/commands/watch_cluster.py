"""The watcher process: `python manage.py watch_cluster` (see triggers/watcher.py)."""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from triggers.watcher import Watcher, poll_diag, run


class Command(BaseCommand):
    help = "Watch Knative Services, Revisions, Pods and their Events; poll Ambassador's diag; broadcast changes."

    def handle(self, *args, **options):
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        self.stdout.write("watch_cluster: watching (SIGTERM stops)")
        run(Watcher(), stop=stop, diag_poll=poll_diag, diag_interval=settings.RELAY_DIAG_INTERVAL)
        self.stdout.write("watch_cluster: stopped")
