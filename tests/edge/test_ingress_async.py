"""Async mode: 202 once stored, then a real Celery worker delivers with retries, leases and replay."""

import json

import pytest
import requests

from tests.cluster import wait_for
from triggers.cluster import kube
from triggers.cluster.status import observe_ksvc
from triggers.deliveries.retries import delivery_replay
from triggers.models import Delivery, Trigger

pytestmark = pytest.mark.celery


def post(relay, trigger, body=b'{"event": 1}'):
    response = requests.post(f"{relay}/hooks/{trigger.token}/events", data=body, timeout=30,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 202, response.text
    return response.json()["delivery_id"]


def finished(pk, timeout=30):
    return wait_for(lambda: Delivery.objects.filter(pk=pk, state__in=("succeeded", "failed", "dead")).first(),
                    timeout=timeout, message=f"delivery {pk} finished")


def test_202_only_once_the_delivery_is_stored_then_delivered(relay, live_trigger, worker):
    trigger = live_trigger(mode="async")
    pk = post(relay, trigger)
    assert Delivery.objects.filter(pk=pk, mode="async").exists()  # durable before the 202
    delivery = finished(pk)
    assert (delivery.state, delivery.attempts, delivery.response_status) == ("succeeded", 1, 200)
    echoed = {k.lower(): v for k, v in json.loads(bytes(delivery.response_body))["headers"].items()}
    assert echoed["x-relay-delivery-id"] == pk and echoed["host"] == "hello.relay-acme.svc.cluster.local"


def test_handler_failing_twice_is_delivered_on_attempt_3(relay, live_trigger, worker):
    trigger = live_trigger(name="flaky", image="kubesim/flaky:2", mode="async")
    delivery = finished(post(relay, trigger))
    assert (delivery.state, delivery.attempts) == ("succeeded", 3)
    assert [a.status for a in delivery.attempt_log.all()] == [500, 500, 200]


def test_always_failing_handler_ends_dead_after_max_attempts(relay, live_trigger, worker):
    trigger = live_trigger(name="broken", image="kubesim/status:500", mode="async", max_attempts=3)
    delivery = finished(post(relay, trigger))
    assert (delivery.state, delivery.attempts) == ("dead", 3)


def test_worker_killed_mid_delivery_still_delivers(relay, live_trigger, worker, make_worker):
    trigger = live_trigger(name="slow", image="kubesim/slow:2s", mode="async", timeout_seconds=3)
    pk = post(relay, trigger)
    wait_for(lambda: Delivery.objects.filter(pk=pk, state="forwarded").exists(), message="attempt started")
    worker.kill()
    make_worker()
    from triggers.tasks import deliveries_sweep

    def delivered():
        deliveries_sweep.delay()  # what beat does every 15 s; the dead worker's lease must expire first
        return Delivery.objects.filter(pk=pk, state="succeeded").first()

    delivery = wait_for(delivered, timeout=40, interval=1.0, message="delivered after the worker died")
    assert delivery.attempts == 2


def test_replay_of_a_dead_delivery_succeeds_once_the_handler_is_fixed(relay, live_trigger, worker, cluster, api, alice):
    trigger = live_trigger(name="fixme", image="kubesim/status:503", mode="async", max_attempts=2)
    dead = finished(post(relay, trigger))
    assert dead.state == "dead"
    Trigger.objects.filter(pk=trigger.pk).update(image="kubesim/echo")
    trigger.refresh_from_db()
    cluster.apply_ksvc(kube.render_ksvc(trigger), exists=True)

    def fixed():
        observe_ksvc(trigger, cluster.get_ksvc(trigger.namespace, trigger.name))
        return trigger.is_ready and trigger.latest_ready_revision == "fixme-00002"

    wait_for(fixed, message="fixed revision ready")
    replay = delivery_replay(dead)
    replay = finished(replay.pk)
    assert (replay.state, replay.replay_of_id) == ("succeeded", dead.pk)
    assert bytes(replay.body) == bytes(dead.body)


def test_not_yet_deployed_async_trigger_stores_and_retries(relay, tenant_a, worker):
    trigger = Trigger.objects.create(tenant=tenant_a, name="later", image="kubesim/echo", mode="async",
                                     max_attempts=2)
    delivery = finished(post(relay, trigger))
    assert delivery.state == "dead" and "no ready revision" in delivery.error
