"""The gateway's route timeout and cold starts: a trigger at zero is woken before its webhook is forwarded, so
a start longer than the route timeout still delivers (sync and async); a handler slower than the route
timeout still gets Envoy's 504; the first webhooks after a deploy, before Envoy has the route, are retried
and never answered with Envoy's empty 404 (sync), nor recorded as the handler's 404 (async).

These run against a kubesim of their own, with a short route timeout (1.5 s) and a start (pull + start +
slow-start) of about 2.5 s, longer than it."""

from __future__ import annotations

import json
import time

import pytest
import requests

from kubesim.config import SimConfig
from kubesim.sim import SimulatorThread
from tests.cluster import FAST, Worker, wait_for
from triggers.cluster import kube
from triggers.cluster.status import observe_ksvc
from triggers.deliveries import retries as deliveries
from triggers.models import Delivery, Trigger

ROUTE_TIMEOUT = 1.5
# + 0.05 s pull + 0.1 s start: 2.5 s before the pod is ready, on this module's simulator, whose progress
# deadline (PROGRESS_DEADLINE, and relayweb's annotation) is far above it (not the shared one's 10 s that
# tests/test_harness.py holds the suite's slow starts to)
START_MS = 2350
SLOW_START = f"kubesim/slow-start:{START_MS}ms"
PROGRESS_DEADLINE = 30.0


@pytest.fixture(scope="module")
def strict_sim(tmp_path_factory):
    config = SimConfig(kubeconfig=str(tmp_path_factory.mktemp("strict") / "kubeconfig"),
                       **{**FAST, "route_timeout": ROUTE_TIMEOUT, "activation_timeout": 20.0,
                          "progress_deadline": PROGRESS_DEADLINE})
    sim = SimulatorThread(config).start()
    yield sim
    sim.stop()


@pytest.fixture
def strict(strict_sim, relay_server, transactional_db, settings, tenant_a):
    """relayweb's ingress in front of the strict kubesim; make(name, image, **fields) deploys a trigger."""
    from relayweb.asgi import ingress

    settings.RELAY_KUBECONFIG = strict_sim.kubeconfig_path
    settings.RELAY_GATEWAY_URL = strict_sim.gateway_url
    settings.RELAY_GATEWAY_ROUTE_TIMEOUT = ROUTE_TIMEOUT
    settings.RELAY_ACTIVATION_TIMEOUT = 15
    kube.reset_cluster()
    cluster = kube.cluster()
    cluster.apply_namespace(kube.render_namespace(tenant_a))

    def make(name, image, ready_pods=0, **fields):
        trigger = Trigger.objects.create(tenant=tenant_a, name=name, image=image, **fields)
        cluster.apply_ksvc(kube.render_ksvc(trigger), exists=False)

        def ready():
            observe_ksvc(trigger, cluster.get_ksvc(trigger.namespace, name))
            return trigger.is_ready

        wait_for(ready, timeout=15, message=f"{name} ready")
        Trigger.objects.filter(pk=trigger.pk).update(ready_pods=ready_pods)  # as the watcher saw it
        return trigger

    make.cluster = cluster
    yield make
    wait_for(lambda: ingress.writer.idle, message="delivery writer drained")
    strict_sim.call(lambda: setattr(strict_sim.sim.config, "route_ready_delay", 0.0))
    cluster.core.delete_namespace(tenant_a.namespace)
    # the next test re-creates it: wait until it is gone (its pods terminate through a grace period first;
    # applying into a namespace still terminating, then creating in it after it went, is a 404)
    wait_for(lambda: tenant_a.namespace not in {n.metadata.name for n in cluster.core.list_namespace().items},
             message=f"namespace {tenant_a.namespace} gone")
    kube.reset_cluster()


def at_zero(sim, trigger):
    """Until kubesim has scaled the trigger's revision to zero (the initial pod went away)."""
    revision = trigger.latest_ready_revision
    wait_for(lambda: sim.call(lambda: not (rt := sim.sim.serving.revisions.get((trigger.namespace, revision)))
                              or not rt.pods), timeout=15, message=f"{trigger.name} scaled to zero")


def post(relay, trigger, body=b'{"event": 1}'):
    return requests.post(f"{relay}/hooks/{trigger.token}/events", data=body, timeout=30,
                         headers={"Content-Type": "application/json"})


def test_a_cold_start_longer_than_the_route_timeout_still_delivers_sync(strict, strict_sim, relay_server):
    trigger = strict("cold", SLOW_START, timeout_seconds=1)
    at_zero(strict_sim, trigger)
    started = time.monotonic()
    response = post(relay_server, trigger)
    took = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert response.json()["body"] == '{"event": 1}' and took > ROUTE_TIMEOUT  # the cold start was waited for
    # the wake-up never reached the handler: the webhook is the only request it saw
    assert strict_sim.call(lambda: sum(p.container.served for p in strict_sim.sim.serving.pods.values()
                                       if p.namespace == trigger.namespace)) == 1
    delivery = wait_for(lambda: Delivery.objects.filter(trigger=trigger, state="succeeded").first())
    assert delivery.cold_start and delivery.response_status == 200


def test_a_cold_start_longer_than_the_route_timeout_still_delivers_async(strict, strict_sim, relay_server,
                                                                         worker_env):
    trigger = strict("coldasync", SLOW_START, mode="async", timeout_seconds=1, max_attempts=1)
    at_zero(strict_sim, trigger)
    worker = Worker({**worker_env, "RELAY_KUBECONFIG": strict_sim.kubeconfig_path,
                     "RELAY_GATEWAY_URL": strict_sim.gateway_url, "RELAY_ACTIVATION_TIMEOUT": "15",
                     "RELAY_GATEWAY_ROUTE_TIMEOUT": str(ROUTE_TIMEOUT)}).start()
    try:
        response = post(relay_server, trigger)
        assert response.status_code == 202, response.text
        delivery = wait_for(lambda: Delivery.objects.filter(
            pk=response.json()["delivery_id"], state__in=("succeeded", "failed", "dead")).first(), timeout=30)
    finally:
        worker.stop()
    assert (delivery.state, delivery.attempts, delivery.response_status) == ("succeeded", 1, 200), delivery.error


def test_a_handler_slower_than_the_route_timeout_gets_envoys_504(strict, relay_server):
    # a timeout stored before the limit (validation refuses it now): the gateway still cuts at its own
    trigger = strict("slowpoke", "kubesim/slow:3s", ready_pods=1, min_scale=1, timeout_seconds=300)
    started = time.monotonic()
    response = post(relay_server, trigger)
    assert (response.status_code, response.text) == (504, "upstream request timeout")
    assert time.monotonic() - started < 3


def test_the_first_webhook_before_envoy_has_the_route_is_retried_not_an_empty_404(strict, strict_sim,
                                                                                 relay_server):
    strict_sim.call(lambda: setattr(strict_sim.sim.config, "route_ready_delay", 1.0))
    trigger = strict("fresh", "kubesim/echo", ready_pods=1, min_scale=1)  # Ready: Envoy is not programmed yet
    assert requests.get(strict_sim.gateway_url, headers={"Host": trigger.gateway_host}).status_code == 404
    response = post(relay_server, trigger)
    assert response.status_code == 200 and response.json()["body"] == '{"event": 1}'


def test_a_route_that_stays_missing_is_503_json_with_retry_after(strict, strict_sim, relay_server):
    strict_sim.call(lambda: setattr(strict_sim.sim.config, "route_ready_delay", 30.0))
    for name, pods in (("late", 1), ("latecold", 0)):  # forwarding, and waking
        trigger = strict(name, "kubesim/echo", ready_pods=pods, min_scale=1)
        started = time.monotonic()
        response = post(relay_server, trigger)
        assert response.status_code == 503 and response.headers["Retry-After"] == "5"
        assert "no route to trigger acme/" in response.json()["detail"]
        assert 1.5 < time.monotonic() - started < 6


def test_a_handlers_own_404_is_relayed_unchanged(strict, relay_server):
    trigger = strict("notfound", "kubesim/status:404", ready_pods=1, min_scale=1)
    started = time.monotonic()
    response = post(relay_server, trigger)
    assert response.status_code == 404 and response.json()["status"] == 404  # its body, at once
    assert time.monotonic() - started < 1


def async_delivery(trigger) -> Delivery:
    """An async delivery as the ingress records it, for the worker's service to attempt (in this process)."""
    body = b'{"event": 1}'
    return Delivery.objects.create(trigger=trigger, mode="async", method="POST", path="/events", body=body,
                                   body_size=len(body), headers=[["Content-Type", "application/json"]])


def test_an_async_delivery_before_envoy_has_the_route_is_retried_within_its_attempt(strict, strict_sim):
    strict_sim.call(lambda: setattr(strict_sim.sim.config, "route_ready_delay", 1.0))
    trigger = strict("freshasync", "kubesim/echo", ready_pods=1, min_scale=1, mode="async")
    assert requests.get(strict_sim.gateway_url, headers={"Host": trigger.gateway_host}).status_code == 404
    delivery = async_delivery(trigger)
    assert deliveries.delivery_deliver(delivery.pk) == "succeeded"
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.response_status, delivery.error) == (1, 200, "")
    assert json.loads(bytes(delivery.response_body))["body"] == '{"event": 1}'  # the handler's own answer


def test_an_async_delivery_to_a_route_still_missing_is_retried_later_never_the_handlers_404(strict, strict_sim):
    strict_sim.call(lambda: setattr(strict_sim.sim.config, "route_ready_delay", 30.0))
    for name, pods in (("lateasync", 1), ("latecoldasync", 0)):  # forwarding, and waking
        trigger = strict(name, "kubesim/echo", ready_pods=pods, min_scale=1, mode="async", max_attempts=3)
        delivery = async_delivery(trigger)
        started = time.monotonic()
        assert deliveries.delivery_deliver(delivery.pk) == "retrying", name
        assert 1.5 < time.monotonic() - started < 6  # the route was waited for, briefly
        delivery.refresh_from_db()
        assert delivery.response_status == 503 and f"no route to trigger {name} yet" in delivery.error, name
        assert [a.status for a in delivery.attempt_log.all()] == [503]
