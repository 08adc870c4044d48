"""Outages answer cleanly, under the real web server: a database that dropped every connection is
reconnected to at once (no 500), a database that is down answers 503 JSON with Retry-After (webhooks,
API) or a plain 503 page, never a 202 for a delivery not stored; a trigger deleted while its route is
cached answers 404.

The database outages are real: the test database's other connections are terminated with
pg_terminate_backend, and new ones refused (ALTER DATABASE … ALLOW_CONNECTIONS false)."""

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.conf import settings
from django.db import connection
from django.test import Client

from tests.cluster import wait_for
from triggers.models import Delivery, Trigger

pytestmark = pytest.mark.django_db(transaction=True)


def hook(relay, trigger, body=b'{"n": 1}', **headers):
    return requests.post(f"{relay}/hooks/{trigger.token}/e", data=body, timeout=30,
                         headers={"Content-Type": "application/json", **headers})


def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: its connections are terminated and refused")


def terminate_other_connections(cursor=None) -> int:
    """End the test database's connections but this test's own (a database restart, as the others see it)."""
    with contextlib.ExitStack() as stack:
        cursor = cursor or stack.enter_context(connection.cursor())
        cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                       "WHERE datname = %s AND pid <> %s", [connection.settings_dict["NAME"], own_pid()])
        return cursor.fetchone()[0]


def own_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


@contextlib.contextmanager
def database_down():
    """New connections to the test database are refused and the open ones (but this test's) are ended.
    (ALTER DATABASE from the maintenance database: a database cannot refuse the session changing it.)"""
    import psycopg2

    s = connection.settings_dict
    admin = psycopg2.connect(dbname="postgres", user=s["USER"], password=s["PASSWORD"], host=s["HOST"] or None,
                             port=s["PORT"] or None)
    admin.autocommit = True
    name = connection.ops.quote_name(s["NAME"])
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
            terminate_other_connections(cursor)
        yield
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        admin.close()


@pytest.fixture
def cached_routes(relay):
    """Routes stay cached for the whole test (the production window is RELAY_INGRESS_CACHE_TTL, 2 s)."""
    from relayweb.asgi import ingress

    ttl, ingress.routes.ttl = ingress.routes.ttl, 60.0
    ingress.routes.entries.clear()
    yield
    ingress.routes.ttl = ttl
    ingress.routes.entries.clear()


def send_many(relay, triggers, count=8):
    with ThreadPoolExecutor(count) as pool:  # concurrent: the ingress's database work spreads over its threads
        return list(pool.map(lambda i: hook(relay, triggers[i % len(triggers)], b'{"n": %d}' % i), range(count)))


def test_webhooks_succeed_right_after_the_database_ended_every_connection(relay, live_trigger, tenant_a):
    postgres_only()
    sync = live_trigger()
    queued = Trigger.objects.create(tenant=tenant_a, name="queued", image="kubesim/echo", mode="async")
    assert {r.status_code for r in send_many(relay, [sync, queued])} == {200, 202}
    time.sleep(settings.RELAY_INGRESS_CACHE_TTL + 0.1)  # the next webhooks load their routes again
    assert terminate_other_connections() > 0  # the ingress's pooled connections (a database restart)
    for response in send_many(relay, [sync, queued]):
        assert response.status_code in (200, 202), response.text


@pytest.mark.celery
def test_a_worker_carries_on_after_the_database_ended_its_connections(relay, live_trigger, worker):
    """(Celery closes the worker's connections around every task, so it never reuses a dead one.)"""
    postgres_only()
    trigger = live_trigger(mode="async")

    def delivered(response):
        assert response.status_code == 202, response.text
        pk = response.json()["delivery_id"]
        return wait_for(lambda: Delivery.objects.filter(pk=pk, state="succeeded").first(), timeout=30,
                        message=f"delivery {pk} delivered")

    delivered(hook(relay, trigger))  # the worker holds a pooled connection now
    assert terminate_other_connections() > 0  # the worker's and the ingress's
    response = hook(relay, trigger)
    if response.status_code == 503:  # the ingress's own reconnect is the first test's; here the worker's counts
        response = hook(relay, trigger)
    assert delivered(response).attempts == 1  # no failed attempt, no wait for the sweep


def test_a_database_outage_answers_503_json_with_retry_after_and_never_202(relay, live_trigger, tenant_a,
                                                                          cached_routes):
    postgres_only()
    sync = live_trigger(dedupe_header="X-Event-Id")
    queued = Trigger.objects.create(tenant=tenant_a, name="queued", image="kubesim/echo", mode="async")
    unloaded = Trigger.objects.create(tenant=tenant_a, name="unloaded", image="kubesim/echo", mode="async")
    assert hook(relay, sync, **{"X-Event-Id": "a"}).status_code == 200
    assert hook(relay, queued).status_code == 202  # both routes cached now; `unloaded`'s is not
    with database_down():
        answers = {"route lookup": hook(relay, unloaded), "async store": hook(relay, queued),
                   "sync claim": hook(relay, sync, **{"X-Event-Id": "b"})}
        for path, response in answers.items():
            assert response.status_code == 503, (path, response.status_code, response.text)
            assert response.headers["Content-Type"] == "application/json" and response.headers["Retry-After"]
            assert "database is unavailable" in response.json()["detail"], path
    assert hook(relay, queued).status_code == 202
    assert hook(relay, unloaded).status_code == 202
    assert hook(relay, sync, **{"X-Event-Id": "b"}).status_code == 200
    stored = Delivery.objects.filter(trigger__in=[queued, unloaded])
    assert stored.count() == 3  # nothing of the outage's webhooks half-stored


def test_pages_and_the_api_answer_503_while_the_database_is_down(relay, alice, token_for):
    postgres_only()
    browser = Client()
    browser.force_login(alice)
    cookies = {settings.SESSION_COOKIE_NAME: browser.cookies[settings.SESSION_COOKIE_NAME].value}
    api = {"Authorization": f"Token {token_for(alice)}"}
    assert requests.get(f"{relay}/api/v1/tenants/", headers=api, timeout=10).status_code == 200
    with database_down():
        response = requests.get(f"{relay}/api/v1/tenants/", headers=api, timeout=10)
        assert response.status_code == 503 and response.headers["Retry-After"]
        assert "database is unavailable" in response.json()["detail"]
        page = requests.get(f"{relay}/", cookies=cookies, timeout=10, allow_redirects=False)
        assert page.status_code == 503 and page.headers["Retry-After"]
        assert page.headers["Content-Type"].startswith("text/html") and "Temporarily unavailable" in page.text
    assert requests.get(f"{relay}/api/v1/tenants/", headers=api, timeout=10).status_code == 200


@pytest.mark.parametrize("mode, dedupe", [("async", ""), ("sync", "X-Event-Id")])
def test_a_trigger_deleted_while_its_route_is_cached_answers_404(relay, live_trigger, cached_routes, mode, dedupe):
    trigger = live_trigger(mode=mode, dedupe_header=dedupe)
    assert hook(relay, trigger, **{"X-Event-Id": "1"}).status_code in (200, 202)
    Trigger.objects.filter(pk=trigger.pk).delete()
    response = hook(relay, trigger, **{"X-Event-Id": "2"})
    assert response.status_code == 404, response.text
    assert response.json() == {"detail": "Unknown webhook URL."}


DEPLOY_WITHOUT_BROKER = """
import json, django
django.setup()
from django.test import Client
response = Client(raise_request_exception=False).post("/api/v1/tenants/acme/triggers/later/deploy/",
                                                     HTTP_AUTHORIZATION="Token %s")
print(json.dumps([response.status_code, response.headers.get("Retry-After"), response.content.decode()]))
"""


def test_a_deploy_while_the_task_broker_is_down_answers_503_json_and_is_applied_later(tenant_a, alice, token_for,
                                                                                    settings):
    """A web process whose Redis is unreachable (a port nothing listens on): the deployment is saved,
    pending, and the API says so with 503 JSON instead of a 500; deployments_resume applies it later."""
    import json
    import os
    import subprocess
    import sys

    from tests.cluster import REPO, _database_url
    from triggers.cluster.deploys import deployments_resume
    from triggers.models import Deployment

    trigger = Trigger.objects.create(tenant=tenant_a, name="later", image="kubesim/echo")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": _database_url(),
           "REDIS_URL": "redis://127.0.0.1:9/0"}
    run = subprocess.run([sys.executable, "-c", DEPLOY_WITHOUT_BROKER % token_for(alice)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    status, retry_after, body = json.loads(run.stdout.strip().splitlines()[-1])
    assert (status, retry_after) == (503, "5"), body
    assert "task broker (Redis) is unavailable" in json.loads(body)["detail"]
    (deployment,) = Deployment.objects.filter(trigger=trigger)
    assert deployment.status == Deployment.Status.PENDING
    settings.RELAY_STUCK_AFTER = 0
    assert deployments_resume() == 1  # re-enqueued once the queue answers again


CHANGES_WITHOUT_BROKER = """
import json, django
django.setup()
from django.test import Client
client = Client(raise_request_exception=False, HTTP_AUTHORIZATION="Token %s")
answers = [client.post("/api/v1/tenants/", {"slug": "later", "name": "Later"}, content_type="application/json"),
           client.delete("/api/v1/tenants/gone/"), client.delete("/api/v1/tenants/acme/triggers/old/")]
print(json.dumps([[r.status_code, r.headers.get("Content-Type"), r.content.decode()] for r in answers]))
"""


@pytest.mark.celery
def test_tenants_and_triggers_changed_while_the_broker_is_down_are_resumed_once_it_is_back(
        tenant_a, alice, token_for, make_worker, k8s):
    """A tenant created, a tenant deleted and a trigger deleted by a web process whose Redis is unreachable:
    each answers 503 JSON naming the broker, its row is committed, and the periodic resume queues its work
    (once, however often it runs) for the real worker to do."""
    import json
    import os
    import subprocess
    import sys

    from tenants.models import Membership, Role, Tenant
    from tests.cluster import REPO, _database_url
    from triggers.tasks import deployments_resume

    gone = Tenant.objects.create(slug="gone", name="Gone", state=Tenant.State.READY)
    Membership.objects.create(tenant=gone, user=alice, role=Role.OWNER)
    old = Trigger.objects.create(tenant=tenant_a, name="old", image="kubesim/echo")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": _database_url(),
           "REDIS_URL": "redis://127.0.0.1:9/0"}
    run = subprocess.run([sys.executable, "-c", CHANGES_WITHOUT_BROKER % token_for(alice)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    for status, content_type, body in json.loads(run.stdout.strip().splitlines()[-1]):
        assert (status, content_type) == (503, "application/json"), body
        assert "task broker (Redis) is unavailable" in json.loads(body)["detail"]
    later = Tenant.objects.get(slug="later")
    assert (later.state, Tenant.objects.get(pk=gone.pk).state) == ("provisioning", "deleting")
    assert Trigger.objects.get(pk=old.pk).deleting
    try:
        assert deployments_resume() == 3  # what beat runs every 30 s, the broker answering again
        assert deployments_resume() == 0  # queued already: not again
        make_worker()
        wait_for(lambda: Tenant.objects.filter(pk=later.pk, state=Tenant.State.READY).exists(),
                 message="tenant provisioned")
        wait_for(lambda: not Tenant.objects.filter(pk=gone.pk).exists(), message="tenant torn down")
        wait_for(lambda: not Trigger.objects.filter(pk=old.pk).exists(), message="trigger torn down")
        assert deployments_resume() == 0
    finally:
        with contextlib.suppress(Exception):
            k8s.core.delete_namespace("relay-later")
        wait_for(lambda: "relay-later" not in {ns.metadata.name for ns in k8s.core.list_namespace().items},
                 message="namespace removed")
