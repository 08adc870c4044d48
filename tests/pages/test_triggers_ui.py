"""Trigger pages: list, create / edit with inline errors, detail with history and actions, delete.

No cluster is needed: deploy and delete only enqueue Celery tasks on commit (which does not happen in
these non-transactional tests). The one test that stores secret values runs against kubesim.
"""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.test import Client
from django.utils import timezone

from tenants.models import Tenant
from triggers.cluster import kube
from triggers.models import Deployment, Trigger

pytestmark = pytest.mark.django_db

LIST, NEW = "/t/acme/triggers/", "/t/acme/triggers/-/new/"
GOOD = {"name": "hello", "image": "ghcr.io/acme/hello:1.0", "port": "8080", "env": "GREETING=hi\nLEVEL=debug",
        "secret_env": "", "min_scale": "0", "max_scale": "3", "target_concurrency": "", "timeout_seconds": "15"}


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def hello(tenant_a, alice):
    return Trigger.objects.create(tenant=tenant_a, name="hello", image="kubesim/echo", created_by=alice,
                                  spec_version=1, env=[{"name": "GREETING", "value": "hi"}])


def page(response) -> str:
    return response.content.decode()


def test_empty_list_invites_editors_to_create_a_trigger(alice, tenant_a):
    html = page(signed_in(alice).get(LIST))
    assert "No triggers yet" in html and f'href="{NEW}"' in html


def test_empty_list_for_a_viewer_has_no_create_link(bob, tenant_a):
    html = page(signed_in(bob).get(LIST))
    assert "No triggers yet" in html and NEW not in html


def test_tenant_pages_have_a_triggers_tab_and_overview_lists_triggers(alice, hello):
    html = page(signed_in(alice).get("/t/acme/"))
    assert f'href="{LIST}"' in html and 'href="/t/acme/triggers/hello/"' in html


def header_badge(html: str) -> str:
    """The live badge next to the trigger's name (the one the websocket updates)."""
    return html.split('<span id="header-badge">', 1)[1].split("</span></h1>", 1)[0]


def test_create_saves_and_shows_the_detail_page(alice, tenant_a):
    response = signed_in(alice).post(NEW, GOOD, follow=True)
    assert response.redirect_chain[-1][0] == "/t/acme/triggers/hello/"
    trigger = Trigger.objects.get(tenant=tenant_a, name="hello")
    assert trigger.image == "ghcr.io/acme/hello:1.0" and trigger.created_by == alice
    assert trigger.env == [{"name": "GREETING", "value": "hi"}, {"name": "LEVEL", "value": "debug"}]
    assert not trigger.deployments.exists()
    html = page(response)
    assert "Trigger “hello” created" in html and "Not deployed" in html


def test_save_and_deploy_records_a_pending_deployment(alice, tenant_a):
    response = signed_in(alice).post(NEW, {**GOOD, "deploy": "1"}, follow=True)
    deployment = Trigger.objects.get(name="hello").deployments.get()
    assert (deployment.status, deployment.created_by, deployment.spec_version) == ("pending", alice, 1)
    html = page(response)
    assert "Deploying hello (spec version 1)" in html
    assert 'data-badge="deploying">Deploying<' in header_badge(html)


@pytest.mark.parametrize(
    "change, field, message",
    [
        ({"name": "Bad_Name"}, "name", "Use lowercase letters, digits and hyphens"),
        ({"name": "x" * 41}, "name", "at most 40 characters"),
        ({"image": "UPPER/case"}, "image",
         "Image reference 'UPPER/case' is invalid: repository 'UPPER/case' must be lowercase"),
        ({"image": ""}, "image", "This field is required"),
        ({"port": "8012"}, "port", "Port 8012 is reserved by Knative"),
        ({"port": "70000"}, "port", "Port must be a whole number from 1 to 65535"),
        ({"port": "eighty"}, "port", "Enter a whole number"),
        ({"env": "GREETING=hi\nPORT=9000"}, "env", "Line 2: PORT is set by Knative and cannot be overridden"),
        ({"env": "A=1\n\nB=2\nA=3"}, "env", "Line 4: A is already set on line 1"),
        ({"env": "A=1\njust text"}, "env", "Line 2: expected NAME=value"),
        ({"env": "1ABC=x"}, "env", "Line 1: '1ABC' is not a valid variable name"),
        ({"secret_env": "K_SERVICE=x"}, "secret_env", "Line 1: K_SERVICE is set by Knative"),
        ({"secret_env": "GREETING=s3cr3t"}, "env", "GREETING also set as secret; use one or the other"),
        ({"min_scale": "3", "max_scale": "2"}, "max_scale", "Must be at least min_scale (3)"),
        ({"max_scale": "1000"}, "max_scale", "Must be from 1 to"),
        ({"min_scale": "-1"}, "min_scale", "Must be 0 or more"),
        ({"target_concurrency": "0"}, "target_concurrency", "Must be from 1 to 10000"),
        ({"timeout_seconds": "700"}, "timeout_seconds", "Must be from 1 to 600 seconds"),
        ({"timeout_seconds": "300"}, "timeout_seconds", "Must be from 1 to 15 seconds: the gateway cuts"),
    ],
)
def test_create_shows_each_problem_next_to_its_field(alice, tenant_a, change, field, message):
    response = signed_in(alice).post(NEW, {**GOOD, **change})
    assert response.status_code == 200
    assert message in unescape(page(response))
    assert message in " ".join(response.context["form"].errors[field])
    assert not Trigger.objects.exists()


def test_create_reports_every_bad_field_at_once(alice, tenant_a):
    response = signed_in(alice).post(NEW, {**GOOD, "image": "UPPER/case", "port": "9090", "timeout_seconds": "0"})
    assert set(response.context["form"].errors) == {"image", "port", "timeout_seconds"}


def test_duplicate_name_is_a_name_error_from_the_service(alice, hello):
    response = signed_in(alice).post(NEW, GOOD)
    assert response.context["form"].errors["name"] == ["A trigger named 'hello' already exists in acme."]


def test_quota_is_a_form_error_not_a_crash(alice, hello, settings):
    settings.RELAY_MAX_TRIGGERS_PER_TENANT = 1
    response = signed_in(alice).post(NEW, {**GOOD, "name": "second"})
    assert response.status_code == 200
    assert "has reached its limit of 1 triggers" in page(response)
    assert Trigger.objects.count() == 1


def test_same_name_in_another_tenant_is_fine(alice, charlie, hello, tenant_b):
    response = signed_in(charlie).post("/t/globex/triggers/-/new/", GOOD)
    assert response.status_code == 302
    assert Trigger.objects.filter(name="hello").count() == 2


def test_edit_form_is_prefilled_and_has_no_name_field(alice, hello):
    response = signed_in(alice).get("/t/acme/triggers/hello/edit/")
    form = response.context["form"]
    assert "name" not in form.fields
    assert form.initial["env"] == "GREETING=hi" and form.initial["image"] == "kubesim/echo"
    assert "GREETING=hi" in page(response)


def test_edit_saves_a_new_spec_version(alice, hello):
    data = {**GOOD, "image": "kubesim/echo:2", "max_scale": "5"}
    response = signed_in(alice).post("/t/acme/triggers/hello/edit/", data, follow=True)
    hello.refresh_from_db()
    assert (hello.image, hello.max_scale, hello.spec_version) == ("kubesim/echo:2", 5, 2)
    assert "Saved hello (spec version 2)" in page(response)
    assert not hello.deployments.exists()


def test_edit_and_deploy(alice, hello):
    signed_in(alice).post("/t/acme/triggers/hello/edit/", {**GOOD, "image": "kubesim/echo:3", "deploy": "1"})
    hello.refresh_from_db()
    assert hello.deployments.get().spec_version == hello.spec_version == 2


def test_edit_shows_errors_inline_and_changes_nothing(alice, hello):
    response = signed_in(alice).post("/t/acme/triggers/hello/edit/", {**GOOD, "port": "9091", "env": "PORT=1"})
    assert set(response.context["form"].errors) == {"port", "env"}
    hello.refresh_from_db()
    assert (hello.port, hello.spec_version) == (8080, 1)


def test_secret_values_need_a_ready_namespace_and_say_so(alice, hello, tenant_a):
    tenant_a.state = Tenant.State.PROVISIONING
    tenant_a.save()
    response = signed_in(alice).post("/t/acme/triggers/hello/edit/", {**GOOD, "secret_env": "TOKEN=hunter2-value"})
    assert response.status_code == 200
    assert response.context["form"].errors["secret_env"] == [
        "The tenant's namespace is not ready yet; set secrets once it is."]
    html = page(response)
    assert "hunter2-value" not in html
    hello.refresh_from_db()
    assert hello.secret_env == {}


def test_created_trigger_whose_secrets_could_not_be_stored_lands_on_edit(alice, tenant_a):
    tenant_a.state = Tenant.State.PROVISIONING
    tenant_a.save()
    response = signed_in(alice).post(NEW, {**GOOD, "secret_env": "TOKEN=hunter2-value"}, follow=True)
    assert response.redirect_chain[-1][0] == "/t/acme/triggers/hello/edit/"
    html = page(response)
    assert "The secret values were not stored" in html and "hunter2-value" not in html


@pytest.fixture
def cluster(tmp_path, settings, tenant_a):
    """kubesim with tenant A's namespace, as the cluster kube.cluster() talks to."""
    from tests.kubesim.conftest import _start

    sim = _start(tmp_path)
    settings.RELAY_KUBECONFIG = sim.kubeconfig_path
    kube.reset_cluster()
    kube.cluster().core.create_namespace({"metadata": {"name": tenant_a.namespace}})
    yield kube.cluster()
    kube.reset_cluster()
    sim.stop()


def _secret_keys(cluster, trigger) -> set[str]:
    """The keys of the Secrets the trigger's variables are read from."""
    keys: set[str] = set()
    for name in {kube.secret_name(trigger, meta.get("version")) for meta in trigger.secret_env.values()}:
        stored = cluster.core.read_namespaced_secret(name, trigger.namespace)
        keys |= set(stored.data or {})
    return keys


def test_secret_values_are_stored_in_the_cluster_and_never_shown(alice, bob, hello, cluster):
    client = signed_in(alice)
    secret = "s3cr3t-value-9f8e7d"
    response = client.post("/t/acme/triggers/hello/edit/", {**GOOD, "secret_env": f"API_KEY={secret}\nOTHER=x"},
                           follow=True)
    assert response.status_code == 200
    hello.refresh_from_db()
    assert set(hello.secret_env) == {"API_KEY", "OTHER"}
    assert _secret_keys(cluster, hello) == {"API_KEY", "OTHER"}
    edit = page(client.get("/t/acme/triggers/hello/edit/"))
    assert "API_KEY (set " in edit  # the edit page names it, with when it was set
    pages = [page(response), edit]
    for user in (alice, bob):
        for path in (LIST, "/t/acme/", "/t/acme/triggers/hello/"):
            pages.append(page(signed_in(user).get(path)))
    assert all(secret not in html for html in pages)
    assert "API_KEY" in pages[-1]  # the viewer sees the name on the detail page
    # Removing one keeps the other.
    client.post("/t/acme/triggers/hello/edit/", {**GOOD, "remove_secrets": ["OTHER"]})
    hello.refresh_from_db()
    assert set(hello.secret_env) == {"API_KEY"}


def test_the_secret_input_is_never_filled_back_in(alice, hello):
    response = signed_in(alice).post("/t/acme/triggers/hello/edit/",
                                     {**GOOD, "port": "8012", "secret_env": "TOKEN=hunter2-value"})
    assert "Port 8012 is reserved" in page(response)
    assert "hunter2-value" not in page(response)


def test_list_shows_each_state(alice, tenant_a):
    def make(name, **fields):
        return Trigger.objects.create(tenant=tenant_a, name=name, image="kubesim/echo", **fields)

    make("fresh")
    Deployment.objects.create(trigger=make("rolling"), spec_version=1, status="waiting")
    ok = make("ok", ready_status="True", generation=2, observed_generation=2)
    Deployment.objects.create(trigger=ok, spec_version=1, status="ready")
    broken = make("broken")
    Deployment.objects.create(trigger=broken, spec_version=1, status="failed", reason="ExitCode1",
                              message="Container failed with: boom")
    paused = make("paused", suspended=True)
    make("going", deleting=True)
    html = page(signed_in(alice).get(LIST))
    rows = {t: html.split(f'id="trigger-{t}"')[1].split("</tr>")[0]
            for t in ("fresh", "rolling", "ok", "broken", "paused", "going")}
    assert "Not deployed" in rows["fresh"]
    assert "Deploying" in rows["rolling"] and "Waiting for Knative" in rows["rolling"]
    assert ">Ready<" in rows["ok"]
    assert "Failed: ExitCode1" in rows["broken"] and "Container failed with: boom" in rows["broken"]
    assert "Suspended" in rows["paused"] and paused.suspended
    assert "Deleting…" in rows["going"]


def test_list_does_not_query_per_trigger(alice, tenant_a, django_assert_max_num_queries):
    for i in range(10):
        trigger = Trigger.objects.create(tenant=tenant_a, name=f"t{i}", image="kubesim/echo")
        Deployment.objects.create(trigger=trigger, spec_version=1)
    client = signed_in(alice)
    with django_assert_max_num_queries(12):
        assert client.get(LIST).status_code == 200


def test_detail_shows_configuration_status_and_history(alice, bob, hello):
    hello.address_url = "http://hello.relay-acme.svc.cluster.local"
    hello.ready_status, hello.ready_reason, hello.generation, hello.observed_generation = "True", "", 2, 2
    hello.latest_ready_revision = hello.latest_created_revision = "hello-00002"
    hello.save()
    Deployment.objects.create(trigger=hello, spec_version=1, status="failed", reason="ContainerMissing",
                              message="Unable to fetch image \"kubesim/nope\"", created_by=alice,
                              created_at=timezone.now() - timezone.timedelta(minutes=5))
    Deployment.objects.create(trigger=hello, spec_version=2, status="ready", revision="hello-00002",
                              created_by=bob, redeploy=True)
    html = page(signed_in(alice).get("/t/acme/triggers/hello/"))
    assert "http://hello.relay-acme.svc.cluster.local" in html and "GREETING=hi" in html
    history = html.split('id="deployment-table"')[1]
    assert history.index("hello-00002") < history.index("ContainerMissing")
    assert "Unable to fetch image &quot;kubesim/nope&quot;" in history
    assert "alice" in history and "bob" in history and "v1" in history and "redeploy" in history
    assert 'data-badge="ready">Ready<' in header_badge(html)


def test_detail_says_when_the_old_revision_still_serves(alice, hello):
    hello.ready_status, hello.ready_reason = "False", "RevisionFailed"
    hello.ready_message = 'Revision "hello-00002" failed with message: Container failed with: crash.'
    hello.latest_ready_revision, hello.latest_created_revision = "hello-00001", "hello-00002"
    hello.save()
    Deployment.objects.create(trigger=hello, spec_version=2, status="failed", reason="RevisionFailed",
                              message=hello.ready_message)
    html = page(signed_in(alice).get("/t/acme/triggers/hello/"))
    notice = html.split('id="old-revision"')[1].split("</div>")[0]
    assert "Revision <code>hello-00001</code> still serves traffic" in notice
    assert "the newest revision\n  <code>hello-00002</code> failed: Revision &quot;hello-00002&quot; failed" in notice


def test_no_old_revision_notice_when_healthy(alice, hello):
    html = page(signed_in(alice).get("/t/acme/triggers/hello/"))
    assert "still serves traffic" not in html


def test_editor_sees_actions(alice, hello):
    html = page(signed_in(alice).get("/t/acme/triggers/hello/"))
    for action in ("deploy", "redeploy", "suspend", "delete"):
        assert f'action="/t/acme/triggers/hello/{action}/"' in html
    assert 'href="/t/acme/triggers/hello/edit/"' in html and "csrfmiddlewaretoken" in html


def test_viewer_sees_everything_read_only(bob, hello):
    client = signed_in(bob)
    for path in (LIST, "/t/acme/triggers/hello/"):
        html = page(client.get(path))
        assert "hello" in html
        assert "<form method=\"post\" action=\"/t/acme/triggers" not in html and "/edit/" not in html
        assert NEW not in html


@pytest.mark.parametrize("method, path", [
    ("get", NEW), ("post", NEW), ("get", "/t/acme/triggers/hello/edit/"), ("post", "/t/acme/triggers/hello/edit/"),
    ("post", "/t/acme/triggers/hello/deploy/"), ("post", "/t/acme/triggers/hello/redeploy/"),
    ("post", "/t/acme/triggers/hello/suspend/"), ("post", "/t/acme/triggers/hello/resume/"),
    ("post", "/t/acme/triggers/hello/delete/"),
])
def test_viewer_gets_403_on_every_change_url(bob, hello, method, path):
    data = {**GOOD, "name": "other", "confirm": "hello"} if method == "post" else None
    assert getattr(signed_in(bob), method)(path, data).status_code == 403
    hello.refresh_from_db()
    assert (hello.suspended, hello.deleting, hello.spec_version, hello.image) == (False, False, 1, "kubesim/echo")
    assert not hello.deployments.exists() and Trigger.objects.count() == 1


def test_non_member_gets_404_even_for_an_existing_trigger(charlie, hello, tenant_b):
    client = signed_in(charlie)
    assert client.get("/t/acme/triggers/hello/").status_code == 404
    assert client.post("/t/acme/triggers/hello/suspend/").status_code == 404
    hello.refresh_from_db()
    assert not hello.suspended


def test_unknown_trigger_is_404(alice, tenant_a):
    assert signed_in(alice).get("/t/acme/triggers/nope/").status_code == 404


def test_another_tenants_trigger_is_not_reachable_through_my_tenant(alice, charlie, tenant_a, tenant_b):
    Trigger.objects.create(tenant=tenant_b, name="secret-hook", image="kubesim/echo")
    assert signed_in(alice).get("/t/acme/triggers/secret-hook/").status_code == 404


def test_anonymous_users_are_sent_to_sign_in(hello):
    response = Client().get("/t/acme/triggers/hello/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_action_urls_refuse_get(alice, hello):
    assert signed_in(alice).get("/t/acme/triggers/hello/suspend/").status_code == 405


def test_suspend_and_resume(alice, hello):
    client = signed_in(alice)
    html = page(client.post("/t/acme/triggers/hello/suspend/", follow=True))
    hello.refresh_from_db()
    assert hello.suspended and "hello suspended" in html and 'data-badge="suspended"' in header_badge(html)
    assert 'action="/t/acme/triggers/hello/resume/"' in html
    client.post("/t/acme/triggers/hello/resume/")
    hello.refresh_from_db()
    assert not hello.suspended


def test_deploying_a_suspended_trigger_shows_the_service_message(alice, hello):
    hello.suspended = True
    hello.save()
    response = signed_in(alice).post("/t/acme/triggers/hello/deploy/", follow=True)
    assert response.status_code == 200
    assert "Trigger hello is suspended; resume it before deploying." in page(response)
    assert not hello.deployments.exists()


def test_deploying_while_the_tenant_is_not_ready_shows_the_service_message(alice, hello, tenant_a):
    tenant_a.state = Tenant.State.PROVISIONING
    tenant_a.save()
    response = signed_in(alice).post("/t/acme/triggers/hello/deploy/", follow=True)
    assert "its namespace must be ready before deploying" in page(response)
    assert not hello.deployments.exists()


def test_deploying_over_quota_shows_the_service_message(alice, hello, tenant_a, settings):
    Trigger.objects.create(tenant=tenant_a, name="later", image="kubesim/echo")
    settings.RELAY_MAX_TRIGGERS_PER_TENANT = 1
    response = signed_in(alice).post("/t/acme/triggers/later/deploy/", follow=True)
    assert "is over its limit of 1 triggers; this one cannot deploy" in page(response)
    assert not Deployment.objects.exists()


def test_save_and_deploy_of_a_suspended_trigger_saves_and_explains(alice, hello):
    hello.suspended = True
    hello.save()
    response = signed_in(alice).post("/t/acme/triggers/hello/edit/", {**GOOD, "port": "9000", "deploy": "1"},
                                     follow=True)
    hello.refresh_from_db()
    assert hello.port == 9000 and not hello.deployments.exists()
    assert "is suspended; resume it before deploying" in page(response)


def test_deploy_and_redeploy(alice, hello):
    client = signed_in(alice)
    client.post("/t/acme/triggers/hello/deploy/")
    html = page(client.post("/t/acme/triggers/hello/redeploy/", follow=True))
    first, second = hello.deployments.order_by("pk")
    assert (first.status, first.redeploy) == ("superseded", False)
    assert (second.status, second.redeploy, second.created_by) == ("pending", True, alice)
    hello.refresh_from_db()
    assert hello.redeploy_stamp
    assert "Redeploying hello" in html


def test_delete_needs_the_name_typed(alice, hello):
    client = signed_in(alice)
    html = page(client.post("/t/acme/triggers/hello/delete/", {"confirm": "hell"}, follow=True))
    assert "Type the name “hello” to confirm deletion" in html
    hello.refresh_from_db()
    assert not hello.deleting
    response = client.post("/t/acme/triggers/hello/delete/", {"confirm": "hello"}, follow=True)
    assert response.redirect_chain[-1][0] == LIST
    hello.refresh_from_db()
    assert hello.deleting
    html = page(response)
    assert "Deleting…" in html and "being removed" in html


def test_a_deleting_trigger_offers_no_actions(alice, hello):
    hello.deleting = True
    hello.save()
    html = page(signed_in(alice).get("/t/acme/triggers/hello/"))
    assert "Deleting…" in html and "/deploy/" not in html and "/edit/" not in html


def test_trigger_named_new_does_not_shadow_the_create_page(alice, tenant_a):
    Trigger.objects.create(tenant=tenant_a, name="new", image="kubesim/echo")
    client = signed_in(alice)
    assert "Configuration" in page(client.get("/t/acme/triggers/new/"))
    assert "New trigger" in page(client.get(NEW))


def test_trigger_pages_load_no_third_party_assets(alice, hello, settings):
    settings.SITE_URL = "https://relay.example.com"  # our own origin: the webhook URL is shown as text
    for path in (LIST, NEW, "/t/acme/triggers/hello/", "/t/acme/triggers/hello/edit/"):
        html = page(signed_in(alice).get(path)).replace(settings.SITE_URL + "/hooks/", "")
        assert "https://" not in html and "http://" not in html.replace("http://testserver", "")


@pytest.mark.parametrize("path", ["/t/acme/triggers/%00/", "/t/acme/triggers/hel%00lo/edit/",
                                  "/t/acme/triggers/%E2%80%8Bhello/"])
def test_odd_bytes_in_trigger_paths_are_404_not_500(alice, hello, path):
    assert signed_in(alice).get(path).status_code == 404


def sections_of(html: str) -> dict[str, list[str]]:
    """{legend: [field names in order]} of the trigger form's fieldsets."""
    out = {}
    for chunk in html.split('<fieldset class="form-section"')[1:]:
        legend = chunk.split("<legend>", 1)[1].split("</legend>", 1)[0]
        out[legend] = re.findall(r'data-field="([a-z_]+)"', chunk.split("</fieldset>\n    ", 1)[0])
    return out


def test_the_form_is_in_sections_with_help_and_conditions(alice, tenant_a):
    html = page(signed_in(alice).get(NEW))
    assert sections_of(html) == {
        "Container": ["name", "image", "port", "env", "secret_env"],
        "Scaling": ["min_scale", "max_scale", "target_concurrency", "timeout_seconds"],
        "Webhook": ["mode", "verification", "verification_secret", "hmac_header", "hmac_encoding", "hmac_prefix"],
        "Delivery": ["dedupe_header", "max_attempts"],
    }
    # generic-HMAC fields are marked as applying to generic HMAC only; the secret to any verification
    assert 'data-field="hmac_header" data-show-when="verification" data-show-values="hmac"' in html
    assert ('data-field="verification_secret" data-show-when="verification" '
            'data-show-values="github stripe slack hmac"') in html
    assert 'data-field="max_attempts" data-show-when="mode" data-show-values="async"' in html
    assert 'data-field="image">' in html  # always shown
    # inline help, tied to its input for screen readers
    assert 'aria-describedby="id_image_helptext"' in html and 'id="id_image_helptext"' in html


def test_the_form_keeps_the_apis_validation_per_section(alice, tenant_a):
    bad = {**GOOD, "verification": "hmac", "hmac_header": "", "verification_secret": "s3cret", "max_attempts": "99"}
    html = page(signed_in(alice).post(NEW, bad))
    sections = html.split('<fieldset class="form-section"')
    webhook = next(s for s in sections if "<legend>Webhook</legend>" in s)
    delivery = next(s for s in sections if "<legend>Delivery</legend>" in s)
    assert "Generic HMAC verification needs the name of the signature header." in webhook
    assert "Must be a whole number from 1 to 20." in delivery
    assert 'class="field has-error" data-field="hmac_header"' in webhook
    assert not Trigger.objects.filter(name="hello").exists()
