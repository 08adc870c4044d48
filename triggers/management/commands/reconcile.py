"""Bring the cluster in line with the database: re-create missing ksvcs, re-apply drifted ones, delete orphans."""

import time

from django.conf import settings
from django.core.management.base import BaseCommand

from triggers.cluster.deploys import reconcile_all


class Command(BaseCommand):
    help = "Reconcile every ready tenant's Knative Services (one list call per namespace)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Run one pass and exit (default: loop).")

    def handle(self, *args, once: bool, **options):
        while True:
            report = reconcile_all()
            self.stdout.write(str(report))
            if once:
                return
            time.sleep(settings.RELAY_RECONCILE_INTERVAL)
