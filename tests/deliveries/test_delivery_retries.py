"""Retries obey the trigger: suspending or deleting it cancels what is still to be attempted, and the sweep
queues each due delivery once, however long the workers were away. A real Celery worker and kubesim's
handlers over HTTP; requests that reach a handler are counted at kubesim's gateway."""

from __future__ import annotations

import base64
import json
from collections import Counter
from datetime import timedelta

import pytest
import redis
import requests
from django.conf import settings
from django.db.models import F
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tenants.models import Tenant
from tests.cluster import wait_for
from triggers import tasks
from triggers.models import Delivery, Trigger

pytestmark = pytest.mark.celery

API = "/api/v1/tenants/acme/triggers/"


@pytest.fixture(autouse=True)
def _empty_queue(transactional_db):
    """Messages earlier tests' workers left in this run's queue (their retries) are not this test's."""
    tasks.delivery_deliver.app.control.purge()


@pytest.fixture(autouse=True)
def _fresh_gateway_counts(kubesim):
    """kubesim's gateway counts requests per cluster name for the whole session: an earlier test's trigger of
    the same name in the same namespace (test_ingress_dedupe has a "gone" too) must not count here."""
    kubesim.call(kubesim.sim.serving.stats.clear)


@pytest.fixture
def slow_retries(worker_env):
    """Workers whose first retry comes 1.5-3 s after the first attempt: room to act in between."""
    worker_env["RELAY_RETRY_BASE"] = "3"


class TaskLog:
    """The worker's log, read as it goes: which delivery_deliver calls returned what."""

    def __init__(self, worker):
        self.path = worker.log_path

    @property
    def lines(self) -> list[str]:
        return self.path.read_text(errors="replace").splitlines()

    def results(self, count: int) -> list[str]:
        """The first `count` results, once there are that many."""
        wait_for(lambda: len(self._results()) >= count, message=f"{count} delivery_deliver tasks run")
        return self._results()[:count]

    def _results(self) -> list[str]:
        return [line.rsplit(": ", 1)[-1].strip().strip("'") for line in self.lines
                if "triggers.tasks.delivery_deliver[" in line and " succeeded in " in line]


def handler_requests(kubesim, trigger: Trigger) -> int:
    """Requests kubesim's gateway passed to any revision of the trigger's ksvc."""
    prefix, suffix = f"cluster_{trigger.name}_", f"_{trigger.namespace}"
    return sum(st.ok + st.c4xx + st.c5xx for name, st in list(kubesim.sim.serving.stats.items())
               if name.startswith(prefix) and name.endswith(suffix))


def post(relay, trigger) -> str:
    response = requests.post(f"{relay}/hooks/{trigger.token}/events", json={"event": 1}, timeout=30)
    assert response.status_code == 202, response.text
    return response.json()["delivery_id"]


def first_attempt_failed(pk) -> Delivery:
    return wait_for(lambda: Delivery.objects.filter(pk=pk, state="retrying", attempts=1).first(),
                    message=f"delivery {pk} retrying after attempt 1")


def test_suspending_a_trigger_cancels_its_queued_retries(relay, live_trigger, kubesim, slow_retries,
                                                          make_worker, api, alice, bob):
    trigger = live_trigger(name="susp", image="kubesim/status:503", mode="async", max_attempts=6)
    log = TaskLog(make_worker())
    pk = post(relay, trigger)
    first_attempt_failed(pk)

    assert api(alice).post(f"{API}susp/suspend/").status_code == 200
    delivery = Delivery.objects.get(pk=pk)
    assert (delivery.state, delivery.next_attempt_at) == ("cancelled", None)
    assert "susp was suspended" in delivery.error
    assert log.results(2) == ["retrying", "skipped"]  # the retry queued for it: not sent
    assert handler_requests(kubesim, trigger) == 1
    assert Delivery.objects.get(pk=pk).attempt_log.count() == 1

    # the delivery log shows it, with its reason, and filters on it (viewers too)
    detail = api(bob).get(f"{API}susp/deliveries/{pk}/").json()
    assert (detail["state"], detail["attempt_count"]) == ("cancelled", 1) and "suspended" in detail["error"]
    listed = api(bob).get(f"{API}susp/deliveries/", {"state": "cancelled"}).json()["results"]
    assert [d["id"] for d in listed] == [pk]
    assert api(bob).get(f"{API}susp/deliveries/", {"state": "retrying"}).json()["results"] == []
    bob_client = Client()
    bob_client.force_login(bob)
    page = bob_client.get(reverse("ui-delivery-detail", args=["acme", "susp", pk])).content.decode()
    assert "Cancelled: trigger susp was suspended" in page
    listing = bob_client.get(reverse("ui-delivery-list", args=["acme", "susp"]), {"state": "cancelled"})
    assert pk in listing.content.decode()


def test_deleting_a_trigger_cancels_its_queued_retries(relay, live_trigger, kubesim, slow_retries, make_worker,
                                                        api, alice):
    trigger = live_trigger(name="gone", image="kubesim/status:503", mode="async", max_attempts=6)
    log = TaskLog(make_worker())
    pk = post(relay, trigger)
    first_attempt_failed(pk)
    # the cluster refuses to remove the ksvc for now: the trigger stays "deleting", its handler reachable
    kubesim.call(lambda: kubesim.sim.faults.add(status=503, verb="delete", resource="services.serving.knative.dev"))

    assert api(alice).delete(f"{API}gone/").status_code == 202
    delivery = Delivery.objects.get(pk=pk)
    assert delivery.state == "cancelled" and "gone is being deleted" in delivery.error
    assert log.results(2) == ["retrying", "skipped"]  # the retry queued for it: not sent
    assert Trigger.objects.filter(pk=trigger.pk, deleting=True).exists()  # still there: the ksvc is too
    assert handler_requests(kubesim, trigger) == 1
    assert Delivery.objects.get(pk=pk).state == "cancelled"


def test_resuming_does_not_resurrect_cancelled_deliveries_but_a_replay_is_delivered(
        relay, live_trigger, kubesim, slow_retries, make_worker, api, alice):
    # flaky:1 fails each pod's first request: the first attempt fails, any later one succeeds
    trigger = live_trigger(name="back", image="kubesim/flaky:1", mode="async", min_scale=1)
    log = TaskLog(make_worker())
    pk = post(relay, trigger)
    first_attempt_failed(pk)

    assert api(alice).post(f"{API}back/suspend/").status_code == 200
    assert api(alice).post(f"{API}back/resume/").status_code == 200
    assert log.results(2) == ["retrying", "skipped"]  # the retry queued for it: not sent
    delivery = Delivery.objects.get(pk=pk)
    assert (delivery.state, delivery.attempts) == ("cancelled", 1)
    assert handler_requests(kubesim, trigger) == 1

    response = api(alice).post(f"{API}back/deliveries/{pk}/replay/")
    assert response.status_code == 202, response.content
    replay = wait_for(lambda: Delivery.objects.filter(pk=response.json()["id"], state="succeeded").first(),
                      message="replay delivered")
    assert (replay.replay_of_id, replay.attempts, bytes(replay.body)) == (delivery.pk, 1, bytes(delivery.body))
    assert handler_requests(kubesim, trigger) == 2
    assert Delivery.objects.get(pk=pk).state == "cancelled"


def suspend_row(trigger: Trigger) -> None:
    Trigger.objects.filter(pk=trigger.pk).update(suspended=True)


def delete_tenant_row(trigger: Trigger) -> None:
    Tenant.objects.filter(pk=trigger.tenant_id).update(state=Tenant.State.DELETING)


@pytest.mark.parametrize("name, stop, reason", [
    ("late", suspend_row, "trigger late was suspended"),
    ("orphaned", delete_tenant_row, "tenant acme is being deleted"),
])
def test_a_worker_does_not_attempt_a_delivery_whose_trigger_was_stopped_after_it_was_queued(
        relay, live_trigger, kubesim, make_worker, name, stop, reason):
    trigger = live_trigger(name=name, mode="async")
    pk = post(relay, trigger)  # stored and queued; no worker yet
    stop(trigger)  # a write that cancelled none of its deliveries: the worker's claim checks for itself
    log = TaskLog(make_worker())

    assert log.results(1) == ["cancelled"]
    delivery = Delivery.objects.get(pk=pk)
    assert (delivery.state, delivery.attempts) == ("cancelled", 0) and reason in delivery.error
    assert handler_requests(kubesim, trigger) == 0


def queue_lists() -> list[str]:
    """This run's queue: one Redis list per priority."""
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    return [queue, *(f"{queue}:{priority}" for priority in range(1, 10))]


def queue_length() -> int:
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    return sum(client.llen(key) for key in queue_lists())


def queued_deliveries() -> Counter:
    """Delivery ids in the messages waiting in this run's queue."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    counts: Counter = Counter()
    for key in queue_lists():
        for raw in client.lrange(key, 0, -1):
            message = json.loads(raw)
            args = json.loads(base64.b64decode(message["body"]))[0]
            task = message["headers"]["task"]
            if task == "triggers.tasks.deliveries_dispatch":
                counts.update(args[0])
            elif task == "triggers.tasks.delivery_deliver":
                counts.update([args[0]])
    return counts


def test_the_sweep_queues_each_due_delivery_once_however_long_the_workers_are_down(
        relay, live_trigger, kubesim, make_worker):
    from relayweb.asgi import ingress

    trigger = live_trigger(name="swept", mode="async", min_scale=1)
    pks = [post(relay, trigger) for _ in range(30)]  # stored; the workers are down
    # and one whose worker died mid-attempt: its lease has expired, no message is on its way
    orphan = Delivery.objects.create(trigger=trigger, mode="async", method="POST", path="/orphan",
                                     state="forwarded", attempts=1, next_attempt_at=timezone.now())
    wait_for(lambda: ingress.writer.idle, message="the ingress's messages published")
    due = {*pks, str(orphan.pk)}

    for _ in range(6):  # 90 s of sweeps, every 15 s, without a worker
        Delivery.objects.filter(trigger=trigger).update(
            received_at=F("received_at") - timedelta(seconds=15),
            next_attempt_at=F("next_attempt_at") - timedelta(seconds=15),
            enqueued_at=F("enqueued_at") - timedelta(seconds=15))
        tasks.deliveries_sweep()
    queued = queued_deliveries()
    assert set(queued) == due and set(queued.values()) == {1}, queued.most_common(3)
    assert queue_length() <= len(due)  # (the ingress sends one message per batch of stored deliveries)

    make_worker()  # the workers are back
    wait_for(lambda: Delivery.objects.filter(pk__in=due, state="succeeded").count() == len(due), timeout=60,
             message="all delivered")
    assert handler_requests(kubesim, trigger) == len(due)
    assert Delivery.objects.get(pk=orphan.pk).attempts == 2
    tasks.deliveries_sweep()  # nothing due any more, nothing queued
    assert not queued_deliveries()


def test_an_attempt_in_flight_when_the_trigger_is_suspended_is_recorded_but_not_retried(
        relay, live_trigger, kubesim, make_worker, api, alice):
    # the handler answers after 5 s, the gateway gives up after the trigger's 2 s: a 504, worth a retry
    trigger = live_trigger(name="inflight", image="kubesim/slow:5s", mode="async", timeout_seconds=2)
    log = TaskLog(make_worker())
    pk = post(relay, trigger)
    wait_for(lambda: Delivery.objects.filter(pk=pk, state="forwarded").exists(), message="attempt started")

    assert api(alice).post(f"{API}inflight/suspend/").status_code == 200
    assert api(alice).post(f"{API}inflight/resume/").status_code == 200  # before the attempt ends
    assert log.results(1) == ["cancelled"]
    delivery = Delivery.objects.get(pk=pk)
    assert (delivery.state, delivery.next_attempt_at, delivery.response_status) == ("cancelled", None, 504)
    assert "inflight was suspended" in delivery.error
    assert [a.status for a in delivery.attempt_log.all()] == [504]
    assert handler_requests(kubesim, trigger) == 1


def test_a_delivery_whose_message_was_lost_is_queued_again_once_the_queue_is_drained(
        relay, live_trigger, kubesim, make_worker):
    from relayweb.asgi import ingress

    trigger = live_trigger(name="lost", mode="async", min_scale=1)
    minute_ago = timezone.now() - timedelta(seconds=60)
    # stored a minute ago, its message never reached the broker (which was down then)
    lost = Delivery.objects.create(trigger=trigger, mode="async", method="POST", path="/lost",
                                   next_attempt_at=minute_ago, enqueued_at=minute_ago)
    waiting = post(relay, trigger)  # and one whose message waits for a worker
    wait_for(lambda: ingress.writer.idle, message="the ingress's message published")

    tasks.deliveries_sweep()  # the queue is not drained: the lost one's message might be in it
    assert set(queued_deliveries()) == {waiting}

    make_worker()
    wait_for(lambda: Delivery.objects.filter(pk=waiting, state="succeeded").exists(), message="delivered")
    wait_for(lambda: queue_length() == 0, message="the queue drained")
    tasks.deliveries_sweep()  # every message was taken, and this one is still due: it was lost
    delivered = wait_for(lambda: Delivery.objects.filter(pk=lost.pk, state="succeeded").first(),
                         message="the lost one delivered")
    assert delivered.attempts == 1
    assert handler_requests(kubesim, trigger) == 2
