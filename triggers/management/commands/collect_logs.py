"""The log collector process: `python manage.py collect_logs` (triggers/cluster/logs.py)."""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from triggers.cluster import kube
from triggers.cluster.leader import LeaderElector, lease_namespace, run_elected
from triggers.cluster.logs import LogCollector
from triggers.cluster.watcher import run


class Command(BaseCommand):
    help = ("Follow the logs of every relayweb-managed handler pod and keep each line in the database. "
            "With RELAY_LEADER_ELECTION (the default) only the holder of a Lease (RELAY_LOG_LEASE_NAME) "
            "collects; others stand by.")

    def handle(self, *args, **options):
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        if not settings.RELAY_LEADER_ELECTION:
            self.stdout.write("collect_logs: collecting (SIGTERM stops)")
            run(LogCollector(), stop=stop)
        else:
            elector = LeaderElector(
                kube.cluster(), name=settings.RELAY_LOG_LEASE_NAME,
                namespace=lease_namespace(settings.RELAY_LEADER_LEASE_NAMESPACE),
                lease_duration=settings.RELAY_LEADER_LEASE_DURATION,
                renew_deadline=settings.RELAY_LEADER_RENEW_DEADLINE, retry_period=settings.RELAY_LEADER_RETRY_PERIOD)
            self.stdout.write(f"collect_logs: {elector.identity} standing for lease "
                              f"{elector.namespace}/{elector.name}, collecting while it holds it (SIGTERM stops)")
            run_elected(LogCollector, elector, stop=stop,
                        on_lead=lambda: self.stdout.write(f"collect_logs: {elector.identity} leads; collecting"))
        self.stdout.write("collect_logs: stopped")
