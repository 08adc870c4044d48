"""Re-encrypt every stored secret with the first of RELAY_ENCRYPTION_KEYS (see README, key rotation)."""

from django.core.management.base import BaseCommand

from triggers.rotation import encryption_keys_rotate


class Command(BaseCommand):
    help = "Re-encrypt verification secrets and sealed delivery headers with the first RELAY_ENCRYPTION_KEYS key."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500, help="Rows read per query (default 500).")

    def handle(self, *args, batch_size: int, **options):
        report = encryption_keys_rotate(batch_size=max(1, batch_size))
        for row in report["undecryptable_rows"]:
            self.stderr.write(f"undecryptable with the current keys: {row}")
        self.stdout.write(f"re-encrypted: {report['rotated']}, already current: {report['current']}, "
                          f"undecryptable: {report['undecryptable']}")
