"""Send test webhook: a sample event for the trigger's verification, signed server-side with its stored
secret and sent through the public ingress (the webhook URL people copy), so it is verified, forwarded and
recorded like any sender's; the delivery reaches the open pages through the usual live events.

``trigger_test_webhook`` is what the page and the API call (checks, rate limit, audit, then the worker's
``trigger_test_webhook_send`` task on commit); ``trigger_test_webhook_send`` is that task's body.
"""

from __future__ import annotations

import logging
import math

import redis
import urllib3
from django.conf import settings
from django.db import transaction

from relayweb.hosts import hooks_url
from tenants.audit import audit_record
from triggers.enqueue import enqueue, lease_redis
from triggers.models import Trigger
from triggers.security import crypto, samples

log = logging.getLogger(__name__)

INTERVAL = 2.0  # seconds between two test webhooks of one trigger (RELAY_TEST_WEBHOOK_INTERVAL)
SEND_TIMEOUT_MARGIN = 10  # seconds beyond the trigger's own timeout (a cold start, the ingress's work)
_pool = urllib3.PoolManager(num_pools=2, maxsize=4, retries=False)


class TestWebhookRefused(Exception):
    """Not sent: ``status`` 409 (suspended, being deleted) or 429 (too soon; ``wait`` seconds)."""

    __test__ = False  # not a pytest class

    def __init__(self, message: str, status: int, wait: int | None = None) -> None:
        super().__init__(message)
        self.message, self.status, self.wait = message, status, wait


def _interval() -> float:
    return float(getattr(settings, "RELAY_TEST_WEBHOOK_INTERVAL", INTERVAL))


def _rate_limited(trigger: Trigger) -> int | None:
    """None when this trigger may send one now (and starts its interval), else the seconds to wait."""
    key = f"relayweb:test-webhook:{trigger.pk}:{trigger.created_at.timestamp()}"  # pks may be reused
    interval_ms = max(1, int(_interval() * 1000))
    try:
        client = lease_redis()
        if client.set(key, "1", nx=True, px=interval_ms):
            return None
        return max(1, math.ceil(max(client.pttl(key), 0) / 1000))
    except redis.RedisError as e:  # no counter to keep: the queue is down too, enqueue will say so
        log.warning("test webhook rate limit not checked: %s", e)
        return None


def trigger_test_webhook(*, trigger: Trigger) -> str:
    """Queue a signed sample event for ``trigger``; what it imitates (e.g. "GitHub ping").
    Raises TestWebhookRefused."""
    if trigger.deleting:
        raise TestWebhookRefused("This trigger is being deleted.", 409)
    if trigger.suspended:
        raise TestWebhookRefused(f"Trigger {trigger.name} is suspended: its webhook URL answers 410 Gone. "
                                 "Resume it to send a test webhook.", 409)
    wait = _rate_limited(trigger)
    if wait is not None:
        raise TestWebhookRefused(f"A test webhook was sent just now; try again in {wait} s.", 429, wait)
    event = samples.EVENTS.get(trigger.verification, "test event")
    with transaction.atomic():
        audit_record(tenant=trigger.tenant, action="trigger.test_webhook", target=trigger,
                     changes={"verification": trigger.verification, "event": event})
        pk = trigger.pk
        transaction.on_commit(lambda: enqueue("trigger_test_webhook_send", pk))
    return event


def trigger_test_webhook_send(trigger_id: int) -> int | None:
    """Build, sign and POST the sample to the trigger's webhook URL; the ingress's status, None if unsent."""
    trigger = Trigger.objects.select_related("tenant").filter(pk=trigger_id, deleting=False).first()
    if trigger is None:
        return None
    try:
        secret = crypto.decrypt(trigger.verification_secret) if trigger.verification_secret else ""
    except ValueError:
        log.error("trigger %s: test webhook not sent, its secret cannot be decrypted", trigger_id)
        return None
    sample = samples.sample_event(trigger.verification, secret, trigger=f"{trigger.tenant.slug}/{trigger.name}",
                                  header=trigger.hmac_header, encoding=trigger.hmac_encoding,
                                  prefix=trigger.hmac_prefix)
    url = f"{hooks_url().rstrip('/')}/hooks/{trigger.token}"
    try:
        response = _pool.request("POST", url, body=sample.body, headers=sample.headers, redirect=False,
                                 timeout=urllib3.Timeout(total=trigger.timeout_seconds + SEND_TIMEOUT_MARGIN))
    except urllib3.exceptions.HTTPError as e:
        log.warning("trigger %s: test webhook to the webhook URL failed: %s", trigger_id, e)
        return None
    return response.status
