"""Concurrent writes: an edit made from a stale copy of a trigger writes only what it changes; a deploy takes
the trigger's lock before its deployments, the order the worker's apply takes them in."""

from __future__ import annotations

import os

import pytest
from django.core.exceptions import ValidationError

from triggers import services
from triggers.deliveries import retries as deliveries
from triggers.models import Trigger

pytestmark = pytest.mark.django_db


@pytest.fixture
def trigger(tenant_a, alice):
    return services.trigger_create(tenant=tenant_a, user=alice, name="hello", image="kubesim/echo")


def _stale(trigger) -> Trigger:
    return Trigger.objects.get(pk=trigger.pk)  # what an edit request loaded before the other change


def test_a_stale_edit_after_a_token_rotation_keeps_the_new_token(trigger):
    stale = _stale(trigger)
    rotated = deliveries.trigger_rotate_token(_stale(trigger))
    services.trigger_update(trigger=stale, max_scale=2)
    fresh = Trigger.objects.get(pk=trigger.pk)
    assert (fresh.token, fresh.previous_token) == (rotated.token, trigger.token)
    assert fresh.max_scale == 2 and fresh.spec_version == 2
    assert stale.token == rotated.token  # the edited instance is read back


def test_a_stale_edit_after_a_suspension_keeps_it_suspended(trigger):
    stale = _stale(trigger)
    services.trigger_suspend(trigger=_stale(trigger))
    services.trigger_update(trigger=stale, max_scale=2, mode="async")
    fresh = Trigger.objects.get(pk=trigger.pk)
    assert fresh.suspended and fresh.max_scale == 2 and fresh.mode == "async"


def test_a_stale_edit_after_a_resume_keeps_it_resumed(trigger):
    services.trigger_suspend(trigger=_stale(trigger))
    stale = _stale(trigger)
    services.trigger_resume(trigger=_stale(trigger))
    services.trigger_update(trigger=stale, max_scale=2)
    assert not Trigger.objects.get(pk=trigger.pk).suspended


def test_a_stale_edit_after_the_deletion_flag_is_refused_and_keeps_it(trigger):
    stale = _stale(trigger)
    Trigger.objects.filter(pk=trigger.pk).update(deleting=True)  # trigger_delete's write
    with pytest.raises(ValidationError, match="being deleted"):
        services.trigger_update(trigger=stale, max_scale=2)
    fresh = Trigger.objects.get(pk=trigger.pk)
    assert fresh.deleting and fresh.max_scale == 3


def test_two_stale_edits_of_different_fields_both_count(trigger):
    first, second = _stale(trigger), _stale(trigger)
    services.trigger_update(trigger=first, max_scale=2)
    services.trigger_update(trigger=second, min_scale=1)
    fresh = Trigger.objects.get(pk=trigger.pk)
    assert (fresh.min_scale, fresh.max_scale, fresh.spec_version) == (1, 2, 3)


@pytest.fixture
def concurrently():
    """concurrently(trigger, **fields): those fields are written by "another request" just before the next save
    of that trigger, i.e. after the request under test loaded it."""
    from django.db.models.signals import pre_save

    pending: list = []

    def write(sender, instance, **kwargs):
        while pending:
            pk, fields = pending.pop()
            if instance.pk == pk:
                Trigger.objects.filter(pk=pk).update(**fields)

    pre_save.connect(write, sender=Trigger)
    yield lambda trigger, **fields: pending.append((trigger.pk, fields))
    pre_save.disconnect(write, sender=Trigger)


def test_an_api_edit_racing_a_rotation_and_a_suspension_keeps_both(api, alice, trigger, concurrently):
    concurrently(trigger, token="rotated-meanwhile", previous_token=trigger.token, suspended=True)
    response = api(alice).patch("/api/v1/tenants/acme/triggers/hello/", {"max_scale": 2}, format="json")
    assert response.status_code == 200, response.json()
    fresh = Trigger.objects.get(pk=trigger.pk)
    assert (fresh.token, fresh.suspended, fresh.max_scale) == ("rotated-meanwhile", True, 2)


def test_a_form_edit_racing_a_suspension_keeps_it_suspended(client, alice, trigger, concurrently):
    client.force_login(alice)
    data = {"image": "kubesim/echo", "port": "8080", "env": "", "secret_env": "", "min_scale": "0", "max_scale": "2",
            "target_concurrency": "", "timeout_seconds": "15", "mode": "sync", "verification": "none",
            "hmac_encoding": "hex", "max_attempts": "5"}
    concurrently(trigger, suspended=True)
    response = client.post("/t/acme/triggers/hello/edit/", data)
    assert response.status_code == 302, response.content.decode()[-3000:]
    fresh = Trigger.objects.get(pk=trigger.pk)
    assert fresh.suspended and fresh.max_scale == 2


def test_an_admin_edit_racing_a_rotation_and_the_deletion_flag_keeps_both(client, staff, trigger, concurrently):
    client.force_login(staff)
    concurrently(trigger, token="rotated-meanwhile", deleting=True)
    response = client.post(f"/admin/triggers/trigger/{trigger.pk}/change/", {
        "mode": "async", "verification": "none", "hmac_header": "", "hmac_encoding": "hex", "hmac_prefix": "",
        "dedupe_header": "", "max_attempts": 5, "ready_pods": 0, "desired_replicas": 0, "actual_replicas": 0,
        "active_status": "", "active_reason": "", "pods": "[]", "deployments-TOTAL_FORMS": "0",
        "deployments-INITIAL_FORMS": "0"})
    assert response.status_code == 302, response.content.decode()[-3000:]
    fresh = Trigger.objects.get(pk=trigger.pk)
    assert (fresh.token, fresh.deleting, fresh.mode, fresh.max_attempts) == ("rotated-meanwhile", True, "async", 5)


def _postgresql_only() -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        if os.environ.get("CI"):
            pytest.fail("CI runs this on PostgreSQL (DATABASE_URL)")
        pytest.skip("needs PostgreSQL's row locks: SQLite serialises all writers with its database lock")


@pytest.mark.django_db(transaction=True)
def test_a_deploy_while_the_worker_applies_waits_for_the_trigger_lock_instead_of_deadlocking(
        tenant_a, alice, cluster):
    """A fixed interleaving, two connections: the worker's apply holds the trigger row and is about to write
    its deployment (pausing there) when a deploy starts. Lock order trigger -> deployment on both sides: the
    deploy waits for the trigger and then supersedes the applied deployment. A deploy that superseded (locked)
    the deployment first and the trigger second would deadlock here, and PostgreSQL would abort one side."""
    import threading
    import time

    from django.db import connection
    from django.db.models.signals import pre_save

    from triggers.cluster import deploys, kube
    from triggers.models import Deployment

    _postgresql_only()
    cluster.apply_namespace(kube.render_namespace(tenant_a))
    trigger = services.trigger_create(tenant=tenant_a, user=alice, name="busy", image="kubesim/echo")
    applying = Deployment.objects.create(trigger=trigger, spec_version=trigger.spec_version, created_by=alice)
    worker_holds_trigger, deploy_started = threading.Event(), threading.Event()
    deploy_pid: list[int] = []
    outcome: dict[str, object] = {}

    def blocked_by(pid: int) -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT %s = ANY(pg_blocking_pids(%s))", [pid, deploy_pid[0]])
            return cursor.fetchone()[0]

    def pause_before_the_worker_writes_its_deployment(sender, instance, **kwargs):
        if threading.current_thread() is not worker or instance.status != Deployment.Status.WAITING:
            return
        worker_holds_trigger.set()  # _apply locked the trigger row and applied the ksvc
        assert deploy_started.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            own = cursor.fetchone()[0]
        deadline = time.monotonic() + 10
        while not blocked_by(own) and time.monotonic() < deadline:
            time.sleep(0.02)
        outcome["deploy waited for the worker"] = blocked_by(own)

    def run(name, work):
        try:
            outcome[name] = work()
        except Exception as e:  # noqa: BLE001 - a deadlock aborts one side: reported below
            outcome[name] = e
        finally:
            connection.close()

    def apply():
        return deploys.deployment_apply(applying.pk)

    def deploy():
        assert worker_holds_trigger.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            deploy_pid.append(cursor.fetchone()[0])
        deploy_started.set()
        fresh = Trigger.objects.select_related("tenant").get(pk=trigger.pk)
        return services.trigger_deploy(trigger=fresh, user=alice)

    worker = threading.Thread(target=run, args=("apply", apply))
    requester = threading.Thread(target=run, args=("deploy", deploy))
    pre_save.connect(pause_before_the_worker_writes_its_deployment, sender=Deployment)
    try:
        worker.start()
        requester.start()
        worker.join(60)
        requester.join(60)
    finally:
        pre_save.disconnect(pause_before_the_worker_writes_its_deployment, sender=Deployment)
        cluster.delete_namespace(tenant_a.namespace)
    assert outcome.get("apply") == Deployment.Status.WAITING, outcome
    assert isinstance(outcome.get("deploy"), Deployment), outcome
    assert outcome["deploy waited for the worker"] is True, outcome
    applying.refresh_from_db()
    assert applying.status == Deployment.Status.SUPERSEDED  # after the worker's write, not undone by it
    assert Deployment.objects.get(pk=outcome["deploy"].pk).status == Deployment.Status.PENDING


def _deadlocks() -> int | None:
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


@pytest.mark.celery
def test_twenty_concurrent_deploys_and_redeploys_all_answer_202_without_deadlock(api, alice, worker, k8s):
    """Requests in 20 threads (each its own database connection) while the worker applies them: a deploy
    superseding the deployment the worker holds (trigger locked, ksvc being applied) used to lock that
    deployment before the trigger, the worker the trigger before it: a deadlock. On SQLite
    writers are serialised by the database lock, so this shows only that none fails."""
    import threading
    import time

    from django.db import connection

    from tenants.models import Tenant
    from tests.cluster import wait_for
    from triggers.models import Deployment

    assert api(alice).post("/api/v1/tenants/", {"slug": "acme", "name": "Acme"}, format="json").status_code == 201
    wait_for(lambda: Tenant.objects.filter(slug="acme", state=Tenant.State.READY).exists(), message="tenant ready")
    url = "/api/v1/tenants/acme/triggers/"
    assert api(alice).post(url, {"name": "busy", "image": "kubesim/echo"}, format="json").status_code == 201
    deadlocks_before = _deadlocks()
    answers: list[tuple[int, str]] = []
    start = threading.Barrier(20)

    def request(i: int) -> None:
        client = api(alice)
        try:
            start.wait()
            time.sleep(i * 0.1)  # spread over 2 s, so most arrive while the worker applies an earlier one
            response = client.post(f"{url}busy/{'redeploy' if i % 2 else 'deploy'}/", format="json")
            answers.append((response.status_code, response.content.decode()[:300]))
        finally:
            connection.close()

    threads = [threading.Thread(target=request, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(answers) == 20
    assert all(status in (202, 409) for status, _ in answers), answers
    assert all("message" in body or "detail" in body for status, body in answers if status == 409), answers
    latest = Deployment.objects.filter(trigger__name="busy").order_by("-pk").first()
    wait_for(lambda: Deployment.objects.get(pk=latest.pk).status in ("ready", "failed"), timeout=60,
             message="the last deployment settled")
    assert Deployment.objects.get(pk=latest.pk).status == "ready"
    assert set(Deployment.objects.filter(trigger__name="busy").exclude(pk=latest.pk)
               .values_list("status", flat=True)) <= {"superseded", "ready"}
    if deadlocks_before is not None:
        time.sleep(1)  # statistics are flushed at most once a second
        assert _deadlocks() == deadlocks_before
    try:
        k8s.core.delete_namespace("relay-acme")
    except Exception:  # noqa: BLE001 - best effort cleanup
        pass
    wait_for(lambda: "relay-acme" not in {ns.metadata.name for ns in k8s.core.list_namespace().items},
             message="namespace removed")
