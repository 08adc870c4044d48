"""Retention of the delivery log, and what never reaches the logs."""

import hashlib
import hmac
import logging

import pytest
import requests
from django.utils import timezone

from tests.cluster import wait_for
from triggers.deliveries.retries import deliveries_prune
from triggers.models import Delivery, Trigger
from triggers.security import crypto


def make(trigger, n, days_ago=0):
    at = timezone.now() - timezone.timedelta(days=days_ago)
    Delivery.objects.bulk_create([Delivery(trigger=trigger, mode="sync", method="POST", received_at=at
                                           - timezone.timedelta(seconds=i)) for i in range(n)])


@pytest.mark.django_db
def test_prune_by_age_and_by_row_cap_per_trigger(tenant_a, settings):
    settings.RELAY_DELIVERY_RETENTION_DAYS, settings.RELAY_DELIVERY_MAX_ROWS = 14, 5
    busy = Trigger.objects.create(tenant=tenant_a, name="busy", image="kubesim/echo")
    quiet = Trigger.objects.create(tenant=tenant_a, name="quiet", image="kubesim/echo")
    make(busy, 8)
    make(quiet, 3)
    make(quiet, 2, days_ago=15)
    newest_busy = list(busy.deliveries.order_by("-received_at").values_list("pk", flat=True)[:5])
    assert deliveries_prune() == 3 + 2
    assert list(busy.deliveries.order_by("-received_at").values_list("pk", flat=True)) == newest_busy
    assert quiet.deliveries.count() == 3


@pytest.mark.django_db(transaction=True)
def test_no_body_signature_or_secret_in_the_logs(relay, live_trigger, caplog):
    trigger = live_trigger(verification="github", verification_secret=crypto.encrypt("the-signing-secret"))
    body = b'{"card": "4111-1111-1111-1111-MARKER"}'
    signature = "sha256=" + hmac.new(b"the-signing-secret", body, hashlib.sha256).hexdigest()
    with caplog.at_level(logging.DEBUG):
        for sig in (signature, "sha256=" + "0" * 64):
            requests.post(f"{relay}/hooks/{trigger.token}", data=body, timeout=30,
                          headers={"X-Hub-Signature-256": sig, "Authorization": "Bearer tok-MARKER"})
        wait_for(lambda: Delivery.objects.filter(trigger=trigger).count() == 2, message="recorded")
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    for secret in ("MARKER", "the-signing-secret", signature[7:], "0" * 64):
        assert secret not in text


def test_web_servers_never_write_access_logs_with_webhook_tokens():
    """uvicorn's access log would print /hooks/<token>, and the token is the webhook's credential."""

    from tests.cluster import REPO as repo
    web = next(line for line in (repo / "Procfile").read_text().splitlines() if line.startswith("web:"))
    assert "--no-access-log" in web
    assert '"--no-access-log"' in (repo / "deploy" / "Dockerfile").read_text()
    assert '"--no-access-log"' in (repo / "deploy/helm/relayweb/templates/web.yaml").read_text()
