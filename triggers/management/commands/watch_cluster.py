"""The watcher process: `python manage.py watch_cluster` (triggers/cluster/watcher.py, leader.py)."""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from triggers.cluster import kube
from triggers.cluster.leader import LeaderElector, lease_namespace, run_elected
from triggers.cluster.watcher import Watcher, poll_diag, run


class Command(BaseCommand):
    help = ("Watch Knative Services, Revisions, Pods and their Events; poll Ambassador's diag; broadcast changes. "
            "With RELAY_LEADER_ELECTION (the default) only the holder of a Lease watches; others stand by.")

    def handle(self, *args, **options):
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        if not settings.RELAY_LEADER_ELECTION:
            self.stdout.write("watch_cluster: watching (SIGTERM stops)")
            run(Watcher(), stop=stop, diag_poll=poll_diag, diag_interval=settings.RELAY_DIAG_INTERVAL)
        else:
            elector = LeaderElector(
                kube.cluster(), name=settings.RELAY_LEADER_LEASE_NAME,
                namespace=lease_namespace(settings.RELAY_LEADER_LEASE_NAMESPACE),
                lease_duration=settings.RELAY_LEADER_LEASE_DURATION,
                renew_deadline=settings.RELAY_LEADER_RENEW_DEADLINE, retry_period=settings.RELAY_LEADER_RETRY_PERIOD)
            self.stdout.write(f"watch_cluster: {elector.identity} standing for lease "
                              f"{elector.namespace}/{elector.name}, watching while it holds it (SIGTERM stops)")
            run_elected(Watcher, elector, stop=stop, diag_poll=poll_diag, diag_interval=settings.RELAY_DIAG_INTERVAL,
                        on_lead=lambda: self.stdout.write(f"watch_cluster: {elector.identity} leads; watching"))
        self.stdout.write("watch_cluster: stopped")
