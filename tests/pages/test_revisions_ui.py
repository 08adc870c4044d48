"""The Revisions panel of the trigger page (issue 16): revisions read from kubesim with traffic, tag and ready
state; editors roll back and set a split, errors shown inline naming the field; viewers see no forms and are
refused the posts; other tenants get 404; an unreachable cluster leaves the page working."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.test import Client

from tenants.models import Membership
from triggers.cluster import kube
from triggers.models import Deployment, Trigger

pytestmark = pytest.mark.django_db
DETAIL = "/t/acme/triggers/hello/"


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def text(response) -> str:
    return unescape(re.sub(r"\s+", " ", response.content.decode()))


def revisions_panel(response) -> str:
    html = response.content.decode()
    start = html.index('id="revisions"')
    return unescape(re.sub(r"\s+", " ", html[start:html.index("</section>", start)]))


@pytest.fixture
def hello(live_trigger):
    return live_trigger("hello")


def test_the_panel_lists_revisions_with_traffic_ready_state_and_gc_note(alice, hello):
    response = signed_in(alice).get(DETAIL)
    assert response.status_code == 200
    panel = revisions_panel(response)
    assert "hello-00001" in panel and "100 %" in panel and "Ready" in panel
    assert "revision garbage collector (the config-gc ConfigMap" in panel
    assert "Roll back to this" in panel and 'id="traffic-form"' in panel
    assert 'name="csrfmiddlewaretoken"' in panel
    assert 'name="percent:latest"' in panel and 'name="percent:hello-00001"' in panel


def test_viewers_see_the_revisions_but_no_forms_and_may_not_post(bob, hello):
    panel = revisions_panel(signed_in(bob).get(DETAIL))
    assert "hello-00001" in panel
    assert "Roll back to this" not in panel and "traffic-form" not in panel
    client = signed_in(bob)
    assert client.post(DETAIL + "rollback/", {"revision": "hello-00001"}).status_code == 403
    assert client.post(DETAIL + "traffic/", {"percent:latest": "100"}).status_code == 403
    assert not Deployment.objects.exists()


def test_other_tenants_get_404_and_anonymous_users_sign_in(charlie, tenant_b, hello):
    for path, body in (("rollback/", {"revision": "hello-00001"}), ("traffic/", {"percent:latest": "100"})):
        assert signed_in(charlie).post(DETAIL + path, body).status_code == 404
        response = Client().post(DETAIL + path, body)
        assert response.status_code == 302 and "login" in response["Location"]
    assert not Deployment.objects.exists()


def test_a_bad_split_comes_back_inline_naming_the_field(alice, hello):
    client = signed_in(alice)
    response = client.post(DETAIL + "traffic/", {"percent:latest": "60", "percent:hello-00001": "30"})
    assert response.status_code == 302 and response["Location"].endswith("#revisions")
    panel = revisions_panel(client.get(DETAIL))
    assert "traffic: Traffic targets sum to 90, want 100." in panel
    assert 'value="60"' in panel and 'value="30"' in panel  # what was typed is kept
    client.post(DETAIL + "traffic/", {"percent:latest": "101", "percent:hello-00001": "0"})
    panel = revisions_panel(client.get(DETAIL))
    assert "traffic[0].percent: expected 0 <= 101 <= 100" in panel
    assert "expected 0" not in revisions_panel(client.get(DETAIL))  # shown once
    assert not Deployment.objects.exists()


def test_a_good_split_and_a_rollback_go_through_the_deploy_task(alice, hello):
    client = signed_in(alice)
    client.post(DETAIL + "traffic/", {"percent:latest": "50", "percent:hello-00001": "50"})
    hello.refresh_from_db()
    assert hello.traffic == [{"revision": None, "latest": True, "percent": 50, "tag": ""},
                             {"revision": "hello-00001", "latest": False, "percent": 50, "tag": ""}]
    response = client.post(DETAIL + "rollback/", {"revision": "hello-00001"}, follow=True)
    assert "Rolling back hello" in text(response)
    hello.refresh_from_db()
    assert hello.traffic == [{"revision": "hello-00001", "latest": False, "percent": 100, "tag": ""}]
    assert Deployment.objects.filter(trigger=hello).count() == 2
    client.post(DETAIL + "traffic/", {"percent:latest": "100", "percent:hello-00001": "0"})
    hello.refresh_from_db()
    assert hello.traffic == []


def test_rolling_back_to_an_unknown_revision_names_the_revision(alice, hello):
    client = signed_in(alice)
    response = client.post(DETAIL + "rollback/", {"revision": "hello-00009"}, follow=True)
    assert 'revision: Revision "hello-00009" is not a revision of hello' in text(response)
    assert not Deployment.objects.exists()


def test_an_unreachable_cluster_leaves_the_page_working(alice, tenant_a, settings, tmp_path):
    Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo")
    settings.RELAY_KUBECONFIG = str(tmp_path / "missing-kubeconfig")
    kube.reset_cluster()
    try:
        response = signed_in(alice).get(DETAIL)
        assert response.status_code == 200
        panel = revisions_panel(response)
        assert "Cannot read the revisions of hello from the cluster" in panel
        assert "traffic-form" not in panel
    finally:
        kube.reset_cluster()


def test_a_failed_deploy_offers_a_rollback_to_the_revision_that_serves(alice, bob, tenant_a, hello):
    """Issue 16 item 3: one click from a failed deployment. The newest failed deploy row offers "Roll back to
    <latest ready revision>" to editors; viewers see no form."""
    Membership.objects.get_or_create(tenant=tenant_a, user=bob, defaults={"role": "viewer"})
    ready = hello.latest_ready_revision
    Deployment.objects.create(trigger=hello, spec_version=2, status="failed", reason="ExitCode1",
                              revision="hello-00002")
    html = signed_in(alice).get(DETAIL).content.decode()
    history = html[html.index('id="deployment-history"'):]
    assert f'value="{ready}"' in history and f"Roll back to {ready}" in history
    assert f"Roll back to {ready}" not in signed_in(bob).get(DETAIL).content.decode()
    response = signed_in(alice).post("/t/acme/triggers/hello/rollback/", {"revision": ready})
    assert response.status_code == 302
    latest = Deployment.objects.filter(trigger=hello).first()
    assert (latest.kind, Trigger.objects.get(pk=hello.pk).traffic) == (
        "traffic", [{"revision": ready, "latest": False, "percent": 100, "tag": ""}])


def test_the_split_form_keeps_and_sets_tags_even_at_zero_percent(alice, hello):
    """A candidate's tag at 0 % was dropped by the form; now each target has a tag input, and a tagged one at
    0 % is kept (its tag URL stays)."""
    ready = hello.latest_ready_revision
    response = signed_in(alice).post("/t/acme/triggers/hello/traffic/", {
        f"percent:{ready}": "100", f"tag:{ready}": "", "percent:latest": "0", "tag:latest": "candidate"})
    assert response.status_code == 302
    assert Trigger.objects.get(pk=hello.pk).traffic == [
        {"revision": ready, "latest": False, "percent": 100, "tag": ""},
        {"revision": None, "latest": True, "percent": 0, "tag": "candidate"}]
    panel = revisions_panel(signed_in(alice).get(DETAIL))
    assert 'name="tag:latest"' in panel and 'value="candidate"' in panel
    bad = signed_in(alice).post("/t/acme/triggers/hello/traffic/", {
        f"percent:{ready}": "100", "percent:latest": "0", "tag:latest": "Not A Tag"}, follow=True)
    assert "traffic[1].tag" in text(bad)
