"""Dedupe on the sender's delivery id keeps successes only: a repeat after a failed first outcome (the
handler's own 4xx or 5xx, gateway down, timeout, dead) is forwarded again as a new delivery linked to the
first; after a success it is answered from the log; while one is on its way (a sync forward, or an async
delivery accepted and still to be attempted) it is not forwarded twice."""

import http.server
import json
import threading
import time

import pytest
import requests

from tests.cluster import wait_for
from triggers.models import Delivery, Trigger

pytestmark = pytest.mark.django_db(transaction=True)


def hook(relay, trigger, delivery_id, body=b'{"id": "evt"}'):
    return requests.post(f"{relay}/hooks/{trigger.token}/events", data=body, timeout=30,
                         headers={"Idempotency-Key": delivery_id, "Content-Type": "application/json"})


def settled(trigger, count):
    return wait_for(lambda: list(Delivery.objects.filter(trigger=trigger).order_by("received_at"))
                    if Delivery.objects.filter(trigger=trigger).exclude(state="forwarded").count() >= count
                    else None, message=f"{count} deliveries with an outcome")


class ScriptedGateway:
    """A gateway on loopback that answers the scripted statuses in turn (then 200), counting requests; a
    status of 0 means: wait until `release` is set, then answer 200."""

    def __init__(self, *statuses):
        self.statuses, self.hits, self.release = list(statuses), [], threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.hits.append(self.headers["X-Relay-Delivery-Id"])
                status = outer.statuses.pop(0) if outer.statuses else 200
                if status == 0:
                    outer.release.wait(20)
                    status = 200
                body = json.dumps({"status": status, "seen": self.headers["X-Relay-Delivery-Id"]}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway(settings):
    made = []

    def make(*statuses):
        made.append(ScriptedGateway(*statuses))
        settings.RELAY_GATEWAY_URL = made[-1].url
        return made[-1]

    yield make
    for g in made:
        g.close()


@pytest.fixture
def deduped(live_trigger):
    return live_trigger(dedupe_header="Idempotency-Key")


@pytest.mark.parametrize("first_status", [500, 502, 503, 429])
def test_a_repeat_after_a_failed_first_outcome_reaches_the_handler(relay, deduped, gateway, first_status):
    upstream = gateway(first_status)
    assert hook(relay, deduped, "evt_1").status_code == first_status
    again = hook(relay, deduped, "evt_1")
    assert again.status_code == 200 and "X-Relay-Duplicate-Of" not in again.headers
    first, retry = settled(deduped, 2)
    assert upstream.hits == [str(first.pk), str(retry.pk)]  # the handler saw both, each with its own id
    assert (first.state, first.response_status, first.redelivery_of_id) == ("failed", first_status, None)
    assert (retry.state, retry.redelivery_of_id, retry.provider_delivery_id) == ("succeeded", first.pk, "evt_1")
    third = hook(relay, deduped, "evt_1")  # now that one succeeded, repeats are answered from the log
    assert third.status_code == 200 and third.headers["X-Relay-Duplicate-Of"] == str(retry.pk)
    assert third.json() == again.json() and len(upstream.hits) == 2


def test_a_repeat_after_the_gateway_was_down_reaches_the_handler(relay, deduped, kubesim):
    kubesim.call(kubesim.sim.gateway_stop)
    try:
        down = hook(relay, deduped, "evt_down")
    finally:
        kubesim.call(kubesim.sim.gateway_start)
    assert down.status_code == 502
    again = hook(relay, deduped, "evt_down")
    assert again.status_code == 200, again.text
    first, retry = settled(deduped, 2)
    assert again.json()["headers"]["X-Relay-Delivery-Id"] == str(retry.pk)  # the echo handler answered
    assert "unreachable" in first.error and retry.redelivery_of_id == first.pk


def test_a_repeat_after_a_success_does_not_reach_the_handler(relay, deduped, gateway):
    upstream = gateway(200)
    first = hook(relay, deduped, "evt_ok")
    again = hook(relay, deduped, "evt_ok")
    assert first.status_code == again.status_code == 200 and again.json() == first.json()
    assert again.headers["X-Relay-Duplicate-Of"] == first.json()["seen"]
    assert len(upstream.hits) == 1 and len(settled(deduped, 1)) == 1


@pytest.mark.parametrize("first_status", [400, 404, 422])
def test_a_repeat_after_the_handlers_own_4xx_reaches_the_handler_again(relay, deduped, gateway, first_status):
    upstream = gateway(first_status, first_status)
    assert hook(relay, deduped, "evt_4xx").status_code == first_status
    again = hook(relay, deduped, "evt_4xx")  # the handler may have been fixed since: it decides again
    assert again.status_code == first_status and "X-Relay-Duplicate-Of" not in again.headers
    third = hook(relay, deduped, "evt_4xx")
    assert third.status_code == 200 and "X-Relay-Duplicate-Of" not in third.headers
    first, second, last = settled(deduped, 3)
    assert upstream.hits == [str(first.pk), str(second.pk), str(last.pk)]
    assert (first.state, first.response_status, first.redelivery_of_id) == ("failed", first_status, None)
    assert (second.response_status, second.redelivery_of_id) == (first_status, first.pk)
    assert (last.state, last.redelivery_of_id) == ("succeeded", first.pk)
    assert hook(relay, deduped, "evt_4xx").headers["X-Relay-Duplicate-Of"] == str(last.pk)
    assert len(upstream.hits) == 3


def test_repeats_while_one_is_in_flight_are_not_forwarded_twice(relay, deduped, gateway):
    upstream = gateway(503, 0)  # the first fails; its redelivery hangs until released
    assert hook(relay, deduped, "evt_busy").status_code == 503
    results = []

    def send():
        results.append(hook(relay, deduped, "evt_busy"))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    wait_for(lambda: len(results) == 5, message="five repeats answered while one is in flight")
    busy = list(results)
    upstream.release.set()
    for t in threads:
        t.join(30)
    assert sorted(r.status_code for r in results) == [200] + [409] * 5, [r.text for r in results]
    assert all(r.headers["Retry-After"] and "still being forwarded" in r.json()["detail"] for r in busy)
    first, retry = settled(deduped, 2)
    assert len(upstream.hits) == 2 and retry.redelivery_of_id == first.pk
    assert {r.json()["delivery_id"] for r in busy} == {str(retry.pk)}


def test_the_link_is_shown_in_the_api_and_the_ui(relay, deduped, gateway, api, alice, client):
    gateway(502)
    hook(relay, deduped, "evt_link")
    hook(relay, deduped, "evt_link")
    first, retry = settled(deduped, 2)
    base = f"/api/v1/tenants/acme/triggers/{deduped.name}/deliveries/"
    assert api(alice).get(f"{base}{retry.pk}/").json()["redelivery_of"] == str(first.pk)
    assert api(alice).get(f"{base}{first.pk}/").json()["redeliveries"] == [str(retry.pk)]
    listed = api(alice).get(base, {"redelivery_of": str(first.pk)}).json()["results"]
    assert [d["id"] for d in listed] == [str(retry.pk)]
    client.force_login(alice)
    page = client.get(f"/t/acme/triggers/{deduped.name}/deliveries/{retry.pk}/").content.decode()
    assert 'id="redelivery-of"' in page and str(first.pk) in page
    page = client.get(f"/t/acme/triggers/{deduped.name}/deliveries/{first.pk}/").content.decode()
    assert 'id="redeliveries"' in page and str(retry.pk) in page


def test_async_repeats_are_accepted_once_and_again_after_the_first_is_dead(relay, live_trigger, worker):
    trigger = live_trigger(name="gone", image="kubesim/status:503", mode="async", max_attempts=1,
                           dedupe_header="Idempotency-Key")
    accepted = hook(relay, trigger, "evt_async")
    assert accepted.status_code == 202
    pk = accepted.json()["delivery_id"]
    repeat = hook(relay, trigger, "evt_async")  # pending or dead: either way not a second row yet
    if repeat.json().get("duplicate"):
        assert repeat.status_code == 202 and repeat.json()["delivery_id"] == pk
    wait_for(lambda: Delivery.objects.filter(pk=pk, state="dead").exists(), message="first dead")
    again = hook(relay, trigger, "evt_async")
    assert again.status_code == 202 and again.json()["delivery_id"] != pk and "duplicate" not in again.json()
    redelivery = wait_for(lambda: Delivery.objects.filter(pk=again.json()["delivery_id"], state="dead").first(),
                          message="redelivery attempted")
    assert str(redelivery.redelivery_of_id) == pk and redelivery.attempts == 1
    assert Delivery.objects.filter(trigger=trigger).count() == 2


def test_a_claim_left_by_an_ingress_that_stopped_mid_forward_expires(relay, deduped, gateway, settings):
    from datetime import timedelta

    from django.utils import timezone

    upstream = gateway()
    settings.RELAY_ACTIVATION_TIMEOUT, settings.RELAY_DELIVERY_LEASE_MARGIN = 1, 1
    Trigger.objects.filter(pk=deduped.pk).update(timeout_seconds=1)
    deduped.refresh_from_db()
    stranded = Delivery.objects.create(trigger=deduped, mode="sync", method="POST", state="forwarded",
                                       provider_delivery_id="evt_lost")
    recent = Delivery.objects.create(trigger=deduped, mode="sync", method="POST", state="forwarded",
                                     provider_delivery_id="evt_busy")
    Delivery.objects.filter(pk=stranded.pk).update(received_at=timezone.now() - timedelta(seconds=4))
    time.sleep(0.3)  # the route cache sees the new timeout
    assert hook(relay, deduped, "evt_busy").status_code == 409  # within its lease: still on its way
    assert hook(relay, deduped, "evt_lost").status_code == 200
    stranded.refresh_from_db()
    assert stranded.state == "failed" and "stopped while forwarding" in stranded.error
    retry = wait_for(lambda: Delivery.objects.filter(redelivery_of=stranded, state="succeeded").first(),
                     message="forwarded again")
    assert upstream.hits == [str(retry.pk)] and Delivery.objects.get(pk=recent.pk).state == "forwarded"


@pytest.mark.parametrize(("mode", "state", "status", "error", "outcome"), [
    ("sync", "forwarded", None, "", "pending"), ("async", "received", None, "", "pending"),
    ("async", "retrying", 503, "", "pending"), ("async", "forwarded", None, "", "pending"),
    ("sync", "succeeded", 200, "", "final"), ("sync", "succeeded", 302, "", "final"),
    ("async", "succeeded", 204, "", "final"),
    ("sync", "failed", 400, "", "failed"), ("sync", "failed", 404, "", "failed"),
    ("sync", "failed", 422, "", "failed"), ("async", "failed", 400, "", "failed"),
    ("sync", "failed", 500, "", "failed"), ("sync", "failed", 503, "", "failed"),
    ("sync", "failed", 504, "The handler did not answer within 5 s.", "failed"), ("sync", "failed", 429, "", "failed"),
    ("sync", "failed", 408, "", "failed"), ("async", "dead", 503, "", "failed"),
    ("sync", "failed", None, "unreachable", "failed"), ("async", "cancelled", 503, "suspended", "failed"),
])
def test_what_a_repeat_gets_depends_on_the_first_outcome(mode, state, status, error, outcome):
    delivery = Delivery(mode=mode, state=state, response_status=status, error=error)
    assert delivery.dedupe_outcome() == outcome


def test_repeats_to_a_trigger_not_deployed_yet_are_each_recorded_and_linked(relay, tenant_a):
    later = Trigger.objects.create(tenant=tenant_a, name="later", image="kubesim/echo",
                                   dedupe_header="Idempotency-Key")
    assert hook(relay, later, "evt_later").status_code == 503
    assert hook(relay, later, "evt_later").status_code == 503  # still not deployed: recorded, linked
    first, second = settled(later, 2)
    assert (first.response_status, second.response_status, second.redelivery_of_id) == (503, 503, first.pk)


def test_replay_failed_skips_deliveries_the_sender_has_sent_again(tenant_a):
    from datetime import timedelta

    from django.utils import timezone

    from triggers.deliveries.retries import deliveries_replay_failed

    trigger = Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo")
    now = timezone.now()

    def row(state, minutes, first=None, provider_id="evt"):
        return Delivery.objects.create(trigger=trigger, mode="sync", method="POST", state=state,
                                       received_at=now + timedelta(minutes=minutes), response_status=503,
                                       provider_delivery_id=provider_id, redelivery_of=first)

    first = row("failed", 0)
    superseded = row("failed", 1, first)
    last = row("failed", 2, first)
    alone = row("dead", 3, provider_id=None)
    assert deliveries_replay_failed(trigger) == 2
    assert set(Delivery.objects.filter(replay_of__isnull=False).values_list("replay_of_id", flat=True)) == {
        last.pk, alone.pk}
    assert not Delivery.objects.filter(replay_of__in=[first.pk, superseded.pk]).exists()
