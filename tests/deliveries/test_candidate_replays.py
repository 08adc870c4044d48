"""Candidate replays against kubesim over real HTTP (issue 16, item 5): recorded deliveries go to the revision
tagged `candidate` through the gateway's tag host, never to the revision in service nor back to the sender, and
make no Delivery rows; each answer sits beside the original. Who answered is the `revision` kubesim's echo
handler puts in its body. The two revisions and the tag are applied to kubesim directly (spec.traffic), as a
candidate deploy would."""

from __future__ import annotations

import json

import pytest
import redis
import requests
from django.conf import settings
from django.core.exceptions import ValidationError

from tests.cluster import wait_for
from triggers import tasks
from triggers.cluster import kube
from triggers.cluster.status import observe_ksvc
from triggers.deliveries import candidates
from triggers.models import CandidateReplay, Delivery, Trigger

pytestmark = pytest.mark.celery
TOKEN = "Bearer s3cret-sender-token"


@pytest.fixture(autouse=True)
def _no_rate_counts():
    with redis.Redis.from_url(settings.REDIS_URL) as client:
        keys = list(client.scan_iter(match="relayweb:candidate-replays:*"))
        if keys:
            client.delete(*keys)


def _apply(cluster, trigger: Trigger, image: str, traffic: list, env_value: str = "") -> None:
    ksvc = kube.render_ksvc(trigger)
    container = ksvc["spec"]["template"]["spec"]["containers"][0]
    container["image"] = image
    if env_value:
        container["env"] = [{"name": "CANDIDATE", "value": env_value}]
    ksvc["spec"]["traffic"] = traffic
    cluster.apply_ksvc(ksvc, exists=True)


def _observe(cluster, trigger: Trigger, check) -> None:
    def seen():
        observe_ksvc(trigger, cluster.get_ksvc(trigger.namespace, trigger.name))
        return trigger.is_ready and check(trigger)
    wait_for(seen, message="the ksvc's traffic observed")


def with_candidate(cluster, trigger: Trigger, image: str = "kubesim/echo") -> Trigger:
    """Revision 2 of `image` at 0 % under the tag `candidate`; revision 1 keeps all the traffic."""
    first = trigger.latest_ready_revision
    _apply(cluster, trigger, image, [{"revisionName": first, "percent": 100},
                                     {"latestRevision": True, "percent": 0, "tag": "candidate"}], env_value="2")
    _observe(cluster, trigger, lambda t: t.latest_ready_revision != first and candidates.candidate_target(t))
    return trigger


def send(relay, trigger: Trigger, n: int) -> list[Delivery]:
    ids = []
    for i in range(n):
        response = requests.post(f"{relay}/hooks/{trigger.token}/orders?n={i}", json={"order": i},
                                 headers={"Authorization": TOKEN}, timeout=30)
        assert response.status_code == 200, response.text
        seen = {k.lower(): v for k, v in response.json()["headers"].items()}  # what the handler got
        ids.append(seen["x-relay-delivery-id"])
    wait_for(lambda: Delivery.objects.filter(pk__in=ids, response_status__isnull=False).count() == n,
             message=f"{n} deliveries recorded")
    return [Delivery.objects.get(pk=pk) for pk in ids]


def echoed(body: bytes) -> dict:
    return json.loads(bytes(body))


def test_replay_sends_each_delivery_to_the_candidate_only_and_compares(relay, cluster, live_trigger, alice):
    trigger = live_trigger("hello")
    originals = send(relay, trigger, 3)
    first = trigger.latest_ready_revision
    assert {echoed(d.response_body)["revision"] for d in originals} == {first}
    with_candidate(cluster, trigger)
    second = candidates.candidate_target(trigger)["revisionName"]
    before = Delivery.objects.count()

    replay = candidates.candidate_replay_start(trigger=trigger, user=alice, deliveries=[str(d.pk) for d in originals])
    assert replay.revision == second
    assert candidates.candidate_replay_run(replay.pk) == "done"

    replay.refresh_from_db()
    assert (replay.state, replay.error) == ("done", "")
    results = list(replay.results.order_by("position"))
    assert [r.delivery_id for r in results] == [d.pk for d in originals]
    for result, original in zip(results, originals, strict=True):
        answer = echoed(result.candidate_body)
        assert answer["revision"] == second  # the candidate answered, never the revision in service
        assert (result.original_status, result.candidate_status) == (200, 200)
        assert bytes(result.original_body) == bytes(original.response_body)
        assert bytes(result.candidate_body) != bytes(result.original_body)
        # the same request: method, path, query, body; the sender's credential put back; marked as a replay
        assert (answer["method"], answer["path"], answer["query"]) == ("POST", "/orders", original.query)
        assert json.loads(answer["body"]) == json.loads(bytes(original.body))
        headers = {k.lower(): v for k, v in answer["headers"].items()}
        assert headers["x-relay-delivery-id"] == str(original.pk)
        assert headers["x-relay-candidate-replay"] == str(replay.pk)
        assert headers["authorization"] == "[redacted]"  # scrubbed from the stored body, as for deliveries
        assert result.candidate_latency_ms > 0 and result.error == ""
        assert ["Content-Type", "application/json"] in [[k.title(), v] for k, v in result.candidate_headers]
    assert Delivery.objects.count() == before  # no delivery rows, nothing to the sender
    assert all(echoed(d.response_body)["revision"] == first for d in Delivery.objects.all())
    # the webhook URL still reaches the revision in service
    assert echoed(send(relay, trigger, 1)[0].response_body)["revision"] == first


def test_a_candidate_answering_another_status_shows_in_the_comparison(relay, cluster, live_trigger, alice, api):
    trigger = live_trigger("hello")
    originals = send(relay, trigger, 2)
    with_candidate(cluster, trigger, image="kubesim/status:503")
    replay = candidates.candidate_replay_start(trigger=trigger, user=alice, last=5)
    assert candidates.candidate_replay_run(replay.pk) == "done"
    body = api(alice).get(f"/api/v1/tenants/acme/triggers/hello/candidate-replays/{replay.pk}/").json()
    assert body["state"] == "done" and body["deliveries"] == 2 and body["same_status"] == 0
    assert [r["delivery"] for r in body["results"]] == [str(d.pk) for d in originals]  # oldest first
    for r in body["results"]:
        assert (r["original_status"], r["candidate_status"], r["same_status"], r["same_body"]) == (200, 503, False,
                                                                                                    False)
        assert json.loads(r["candidate_body"])["status"] == 503


def test_the_sealed_credential_reaches_the_candidate_while_it_is_kept(relay, cluster, live_trigger, alice,
                                                                     monkeypatch):
    trigger = live_trigger("hello")
    [original] = send(relay, trigger, 1)
    assert original.sealed_headers  # the ingress sealed the Authorization header
    with_candidate(cluster, trigger)
    monkeypatch.setattr(candidates.sealed, "scrub", lambda data, secrets: data)  # keep what the handler saw
    replay = candidates.candidate_replay_start(trigger=trigger, user=alice, deliveries=[str(original.pk)])
    candidates.candidate_replay_run(replay.pk)
    headers = {k.lower(): v for k, v in echoed(replay.results.get().candidate_body)["headers"].items()}
    assert headers["authorization"] == TOKEN
    assert headers["host"] == f"candidate-hello.{trigger.namespace}.svc.cluster.local"
    # once the credentials are no longer kept, the redacted header is left out, never sent as "[redacted]"
    Delivery.objects.filter(pk=original.pk).update(sealed_headers="")
    again = candidates.candidate_replay_start(trigger=trigger, user=alice, deliveries=[str(original.pk)])
    candidates.candidate_replay_run(again.pk)
    headers = {k.lower() for k in echoed(again.results.get().candidate_body)["headers"]}
    assert "authorization" not in headers


def test_the_replay_fails_when_the_candidate_tag_vanished(relay, cluster, live_trigger, alice):
    trigger = live_trigger("hello")
    originals = send(relay, trigger, 2)
    first = trigger.latest_ready_revision
    with_candidate(cluster, trigger)
    replay = candidates.candidate_replay_start(trigger=trigger, user=alice, deliveries=[str(d.pk) for d in originals])
    _apply(cluster, trigger, "kubesim/echo", [{"revisionName": first, "percent": 100}], env_value="2")
    # the gateway no longer routes the tag host, though relayweb has not observed it yet
    assert candidates.candidate_replay_run(replay.pk) == "failed"
    replay.refresh_from_db()
    assert "candidate" in replay.error and "no route" in replay.error, replay.error
    # once observed, a new replay is refused up front, naming the tag
    _observe(cluster, trigger, lambda t: candidates.candidate_target(t) is None)
    with pytest.raises(ValidationError) as refused:
        candidates.candidate_replay_start(trigger=trigger, user=alice, last=1)
    assert "`candidate`" in " ".join(refused.value.messages)
    # and a queued replay whose tag is gone by its turn ends failed, saying so
    stale = CandidateReplay.objects.create(trigger=trigger, revision=replay.revision)
    assert candidates.candidate_replay_run(stale.pk) == "failed"
    stale.refresh_from_db()
    assert "vanished" in stale.error


def test_the_worker_runs_a_replay_started_through_the_api(relay, cluster, live_trigger, alice, api, worker):
    tasks.candidate_replay_run.app.control.purge()
    trigger = live_trigger("hello")
    originals = send(relay, trigger, 2)
    with_candidate(cluster, trigger)
    url = "/api/v1/tenants/acme/triggers/hello/candidate-replays/"
    response = api(alice).post(url, {"last": 2}, format="json")
    assert response.status_code == 202, response.json()
    replay_id = response.json()["id"]
    # the worker may have taken it before the answer was written
    assert response.json()["state"] in ("pending", "running", "done") and response.json()["deliveries"] == 2

    def finished():
        replay = CandidateReplay.objects.get(pk=replay_id)
        return replay if replay.state in ("done", "failed") else None
    replay = wait_for(finished, timeout=30, message="the replay run by the worker")
    assert (replay.state, replay.error) == ("done", "")
    second = candidates.candidate_target(Trigger.objects.get(pk=trigger.pk))["revisionName"]
    assert [echoed(r.candidate_body)["revision"] for r in replay.results.all()] == [second, second]
    assert Delivery.objects.filter(trigger=trigger).count() == len(originals)
    # one at a time per trigger: the finished one no longer holds the slot
    assert api(alice).post(url, {"last": 1}, format="json").status_code == 202
