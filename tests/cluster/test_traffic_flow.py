"""Revisions and traffic for real (issue 16, item 7): the API → Celery worker → kubesim over HTTP, and webhooks
through relayweb's public URL (uvicorn, the ingress) to the gateway. Who served a webhook is the `revision`
kubesim's echo handler puts in its body.
"""

from collections import Counter

import pytest
import requests

from tenants.models import Membership, Role, Tenant
from tests.cluster import wait_for
from tests.cluster.test_deploy_flow import create, deploy, ready_tenant, settled  # noqa: F401 (a fixture)
from triggers.models import Trigger

pytestmark = [pytest.mark.celery, pytest.mark.usefixtures("ready_tenant")]
URL = "/api/v1/tenants/acme/triggers/hello/"


def change(api, user, value: str, **extra):
    """A new spec (so a new revision), deployed; returns the settled Deployment."""
    response = api(user).patch(URL, {"env": [{"name": "V", "value": value}]}, format="json")
    assert response.status_code == 200, response.json()
    response = api(user).post(URL + "deploy/", extra, format="json")
    assert response.status_code == 202, response.json()
    return settled(response.json()["id"])


def applied(response):
    assert response.status_code == 202, response.json()
    deployment = settled(response.json()["id"])
    assert deployment.status == "ready", (deployment.reason, deployment.message)
    return deployment


def warm(trigger_name="hello"):
    """The pods are up (min_scale 1): say so as the watcher would, so the ingress forwards without a wake-up."""
    Trigger.objects.filter(name=trigger_name).update(ready_pods=1)


def served_by(relay, n: int) -> Counter:
    token = Trigger.objects.get(name="hello").token
    counts: Counter = Counter()
    with requests.Session() as session:
        for i in range(n):
            response = session.post(f"{relay}/hooks/{token}", json={"n": i}, timeout=30)
            assert response.status_code == 200, response.text
            counts[response.json()["revision"]] += 1
    return counts


def revisions(api, user) -> dict:
    response = api(user).get(URL + "revisions/")
    assert response.status_code == 200, response.json()
    return {row["name"]: row for row in response.json()["results"]}


def test_split_rollback_and_follow_latest_again(api, alice, bob, relay):
    create(api, alice, min_scale=1)
    assert settled(deploy(api, alice)).status == "ready"
    assert change(api, alice, "2").status == "ready"
    warm()
    Membership.objects.create(tenant=Tenant.objects.get(slug="acme"), user=bob, role=Role.VIEWER)
    rows = revisions(api, bob)  # viewers read
    assert list(rows) == ["hello-00002", "hello-00001"]
    assert (rows["hello-00002"]["percent"], rows["hello-00001"]["percent"]) == (100, 0)
    assert rows["hello-00001"]["spec_version"] == 1 and rows["hello-00002"]["spec_version"] == 2
    assert rows["hello-00001"]["image"] == "kubesim/echo" and rows["hello-00001"]["ready"] == "True"

    # 50/50: 400 webhooks through the public URL land within ±10 % on each
    split = [{"revision": "hello-00001", "percent": 50}, {"latest": True, "percent": 50}]
    deployment = applied(api(alice).put(URL + "traffic/", {"traffic": split}, format="json"))
    assert deployment.revision == "hello-00002"
    counts = served_by(relay, 400)
    assert set(counts) == {"hello-00001", "hello-00002"}, counts
    for name in ("hello-00001", "hello-00002"):
        assert 160 <= counts[name] <= 240, counts
    print(f"50/50 split over 400 webhooks: {dict(counts)}")
    rows = revisions(api, alice)
    assert (rows["hello-00001"]["percent"], rows["hello-00002"]["percent"]) == (50, 50)

    # rollback: once the Route is Ready (the deployment settled), the next webhook goes to revision 1
    applied(api(alice).post(URL + "rollback/", {"revision": "hello-00001"}, format="json"))
    assert served_by(relay, 20) == Counter({"hello-00001": 20})
    assert Trigger.objects.get(name="hello").traffic == [
        {"revision": "hello-00001", "latest": False, "percent": 100, "tag": ""}]

    # a later deploy makes revision 3, which gets nothing while pinned
    assert change(api, alice, "3").status == "ready"
    assert "hello-00003" in revisions(api, alice)
    assert served_by(relay, 20) == Counter({"hello-00001": 20})

    # follow the latest again
    applied(api(alice).put(URL + "traffic/", {"traffic": []}, format="json"))
    assert served_by(relay, 20) == Counter({"hello-00003": 20})
    assert revisions(api, alice)["hello-00003"]["percent"] == 100


def test_candidate_deploy_keeps_traffic_and_is_reachable_on_its_tag_host(api, alice, relay, kubesim):
    create(api, alice, min_scale=1)
    assert settled(deploy(api, alice)).status == "ready"
    warm()
    deployment = change(api, alice, "2", candidate=True)
    assert deployment.status == "ready", (deployment.reason, deployment.message)
    assert Trigger.objects.get(name="hello").traffic == [
        {"revision": "hello-00001", "latest": False, "percent": 100, "tag": ""},
        {"revision": None, "latest": True, "percent": 0, "tag": "candidate"}]
    assert served_by(relay, 30) == Counter({"hello-00001": 30})
    host = "candidate-hello.relay-acme.svc.cluster.local"
    response = requests.post(kubesim.gateway_url + "/", json={}, headers={"Host": host}, timeout=10)
    assert response.status_code == 200 and response.json()["revision"] == "hello-00002"
    row = revisions(api, alice)["hello-00002"]
    assert (row["percent"], row["tag"], row["url"]) == (0, "candidate", f"http://{host}")
    # promote it: all traffic follows the latest revision
    applied(api(alice).put(URL + "traffic/", {"traffic": [{"latest": True, "percent": 100}]}, format="json"))
    assert served_by(relay, 10) == Counter({"hello-00002": 10})
    assert Trigger.objects.get(name="hello").traffic == []


def test_unknown_revisions_and_not_ready_ones_are_refused(api, alice):
    create(api, alice)
    assert settled(deploy(api, alice)).status == "ready"
    response = api(alice).patch(URL, {"image": "kubesim/crash"}, format="json")
    assert response.status_code == 200
    assert settled(deploy(api, alice)).status == "failed"
    wait_for(lambda: revisions(api, alice).get("hello-00002", {}).get("ready") == "False",
             message="revision 2 failed")
    response = api(alice).post(URL + "rollback/", {"revision": "hello-00002"}, format="json")
    assert response.status_code == 400 and "not Ready" in response.json()["revision"][0], response.json()
    response = api(alice).put(URL + "traffic/", {"traffic": [{"revision": "hello-00009", "percent": 100}]},
                              format="json")
    assert response.status_code == 400, response.json()
    assert "hello-00001" in response.json()["traffic[0].revision"][0]
    response = api(alice).post(URL + "rollback/", {"revision": "other-00001"}, format="json")
    assert response.status_code == 400 and "revision" in response.json()
    # a rollback away from the failed latest revision succeeds: judged by the Route (RoutesReady), since the
    # Service's Ready stays False while its latest revision is failed
    deployment = applied(api(alice).post(URL + "rollback/", {"revision": "hello-00001"}, format="json"))
    assert deployment.kind == "traffic"
    assert Trigger.objects.get(name="hello").ready_status == "False"  # Knative's own verdict, still shown
