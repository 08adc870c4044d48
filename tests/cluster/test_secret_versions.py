"""Secret variables live in immutable per-version Secrets (`<trigger>-env-<n>`): a change never touches what a
revision that may still start pods reads, and each Secret goes with the last revision that owns it."""

import base64

import pytest

from tests.cluster import wait_for
from triggers import services
from triggers.cluster import deploys, kube
from triggers.models import Deployment, Trigger

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def namespace(cluster, tenant_a, k8s):
    cluster.apply_namespace(kube.render_namespace(tenant_a))
    yield tenant_a.namespace
    k8s.core.delete_namespace(tenant_a.namespace)
    wait_for(lambda: tenant_a.namespace not in {n.metadata.name for n in k8s.core.list_namespace().items},
             message="namespace gone")


def deploy_now(trigger: Trigger) -> Deployment:
    trigger.refresh_from_db()
    deployment = Deployment.objects.create(trigger=trigger, spec_version=trigger.spec_version)
    deploys.deployment_apply(deployment.pk)

    def settled():
        deploys.deployments_poll()
        deployment.refresh_from_db()
        return deployment.status not in Deployment.ACTIVE

    wait_for(settled, message=f"deployment v{deployment.spec_version} settled")
    assert deployment.status == "ready", (deployment.reason, deployment.message)
    return deployment


def ready_pods(k8s, namespace: str) -> set[str]:
    return {p.metadata.name for p in k8s.core.list_namespaced_pod(namespace).items
            if not p.metadata.deletion_timestamp and any(
                c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])}


def value(k8s, namespace: str, secret: str, key: str) -> str:
    return base64.b64decode(k8s.core.read_namespaced_secret(secret, namespace).data[key]).decode()


def test_removing_a_secret_variable_does_not_break_the_serving_revisions_next_pod(namespace, tenant_a, alice, k8s):
    trigger = services.trigger_create(tenant=tenant_a, user=alice, name="hello", image="kubesim/echo", min_scale=1,
                                      secret_values={"API_KEY": "k1"})
    deploy_now(trigger)
    (pod,) = wait_for(lambda: ready_pods(k8s, namespace) or None, message="pod ready")
    trigger.refresh_from_db()
    services.trigger_set_secrets(trigger=trigger, values={"API_KEY": None})  # saved, not deployed yet
    assert trigger.secret_env == {}
    k8s.core.delete_namespaced_pod(pod, namespace)  # the serving revision starts a pod again (as a cold start does)
    wait_for(lambda: ready_pods(k8s, namespace) - {pod} or None, timeout=10,
             message="the serving revision's new pod starts (its Secret key is still there)")


def test_a_new_value_reaches_only_the_next_revision_and_secrets_go_with_their_revisions(
        namespace, tenant_a, alice, k8s, cluster):
    trigger = services.trigger_create(tenant=tenant_a, user=alice, name="hello", image="kubesim/echo",
                                      secret_values={"API_KEY": "k1"})
    first = trigger.secret_env["API_KEY"]["version"]
    deploy_now(trigger)
    trigger.refresh_from_db()
    services.trigger_set_secrets(trigger=trigger, values={"API_KEY": "k2", "OTHER": "o"})
    second = trigger.secret_env["API_KEY"]["version"]
    assert second > first
    env = kube.render_ksvc(trigger)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [e["valueFrom"]["secretKeyRef"] for e in env] == [
        {"name": f"hello-env-{second}", "key": "API_KEY"}, {"name": f"hello-env-{second}", "key": "OTHER"}]
    assert value(k8s, namespace, f"hello-env-{first}", "API_KEY") == "k1"  # what revision 1 reads: unchanged
    assert value(k8s, namespace, f"hello-env-{second}", "API_KEY") == "k2"
    assert k8s.core.read_namespaced_secret(f"hello-env-{second}", namespace).immutable is True
    deploy_now(trigger)

    def owners(name):
        return [(o.kind, o.name) for o in k8s.core.read_namespaced_secret(name, namespace).metadata.owner_references
                or []]

    assert owners(f"hello-env-{first}") == [("Revision", "hello-00001")]
    assert owners(f"hello-env-{second}") == [("Revision", "hello-00002")]
    cluster.delete_ksvc(namespace, "hello")  # its revisions go, and with them the Secrets they own
    wait_for(lambda: not {s.metadata.name for s in k8s.core.list_namespaced_secret(namespace).items}
             & {f"hello-env-{first}", f"hello-env-{second}"}, message="secrets garbage-collected")


def test_an_unchanged_variable_is_owned_by_every_revision_that_reads_it(namespace, tenant_a, alice, k8s):
    trigger = services.trigger_create(tenant=tenant_a, user=alice, name="hello", image="kubesim/echo",
                                      secret_values={"API_KEY": "k1"})
    version = trigger.secret_env["API_KEY"]["version"]
    deploy_now(trigger)
    services.trigger_update(trigger=Trigger.objects.get(pk=trigger.pk), image="kubesim/echo:2")
    deploy_now(trigger)
    owners = k8s.core.read_namespaced_secret(f"hello-env-{version}", namespace).metadata.owner_references
    assert sorted(o.name for o in owners) == ["hello-00001", "hello-00002"]


def test_the_watcher_settling_a_deployment_owns_its_secrets_too(namespace, tenant_a, alice, k8s, cluster):
    from triggers.cluster.watcher import Watcher

    trigger = services.trigger_create(tenant=tenant_a, user=alice, name="hello", image="kubesim/echo",
                                      secret_values={"API_KEY": "k1"})
    name = f"hello-env-{trigger.secret_env['API_KEY']['version']}"
    live = cluster.apply_ksvc(kube.render_ksvc(trigger), exists=False)
    deployment = Deployment.objects.create(trigger=trigger, spec_version=trigger.spec_version, status="waiting",
                                           generation=live["metadata"]["generation"])
    watcher = Watcher(cluster, watch_timeout=30, max_backoff=0.5)
    watcher.start()
    try:
        def settled():
            watcher.step(timeout=0.05)
            return Deployment.objects.get(pk=deployment.pk).status == "ready"

        wait_for(settled, interval=0, message="settled by the watcher")
    finally:
        watcher.stop()
    owners = k8s.core.read_namespaced_secret(name, namespace).metadata.owner_references
    assert [(o.kind, o.name) for o in owners] == [("Revision", "hello-00001")]


def test_teardown_deletes_the_secrets_no_revision_owns(namespace, tenant_a, alice, k8s, cluster):
    trigger = services.trigger_create(tenant=tenant_a, user=alice, name="hello", image="kubesim/echo",
                                      secret_values={"API_KEY": "k1"})
    name = f"hello-env-{trigger.secret_env['API_KEY']['version']}"
    deploys._delete_in_cluster(cluster, Trigger.objects.get(pk=trigger.pk))  # never deployed: nothing owns it
    assert name not in {s.metadata.name for s in k8s.core.list_namespaced_secret(namespace).items}


def secret_names(k8s, namespace: str) -> set[str]:
    return {s.metadata.name for s in k8s.core.list_namespaced_secret(namespace).items}


def test_a_secret_replaced_before_any_deploy_read_it_is_deleted(namespace, tenant_a, alice, k8s):
    trigger = services.trigger_create(tenant=tenant_a, user=alice, name="hello", image="kubesim/echo",
                                      secret_values={"API_KEY": "k1", "OTHER": "o"})
    first = trigger.secret_env["API_KEY"]["version"]
    services.trigger_set_secrets(trigger=trigger, values={"API_KEY": "k2"})  # OTHER is still read from `first`
    second = trigger.secret_env["API_KEY"]["version"]
    assert {f"hello-env-{first}", f"hello-env-{second}"} <= secret_names(k8s, namespace)
    services.trigger_set_secrets(trigger=trigger, values={"OTHER": None})  # nothing reads `first` any more
    assert f"hello-env-{first}" not in secret_names(k8s, namespace)
    deploy_now(trigger)  # the revision reads `second`
    trigger.refresh_from_db()
    services.trigger_set_secrets(trigger=trigger, values={"API_KEY": "k3"})
    third = trigger.secret_env["API_KEY"]["version"]
    services.trigger_set_secrets(trigger=trigger, values={"API_KEY": "k4"})  # `third` never deployed
    names = secret_names(k8s, namespace)
    assert f"hello-env-{second}" in names  # the serving revision reads it: it goes with that revision
    assert f"hello-env-{third}" not in names
    assert f"hello-env-{trigger.secret_env['API_KEY']['version']}" in names


def test_an_old_revisions_secret_goes_when_knative_deletes_that_revision(namespace, tenant_a, alice, k8s):
    trigger = services.trigger_create(tenant=tenant_a, user=alice, name="hello", image="kubesim/echo",
                                      secret_values={"API_KEY": "k1", "SHARED": "s"})
    first = f"hello-env-{trigger.secret_env['API_KEY']['version']}"  # API_KEY and SHARED
    deploy_now(trigger)
    trigger.refresh_from_db()
    services.trigger_set_secrets(trigger=trigger, values={"API_KEY": "k2"})
    second = f"hello-env-{trigger.secret_env['API_KEY']['version']}"
    deploy_now(trigger)  # hello-00002 reads API_KEY from `second` and SHARED from `first`

    def owners(name):
        return [o.name for o in k8s.core.read_namespaced_secret(name, namespace).metadata.owner_references or []]

    assert owners(first) == ["hello-00001", "hello-00002"]
    # Knative's revision GC (config-gc) deletes an old revision while the trigger lives on: a Secret still
    # read by another revision stays, and only loses the reference to the gone one
    delete_revision(k8s, namespace, "hello-00001")
    wait_for(lambda: owners(first) == ["hello-00002"], message="the gone revision's reference dropped")
    assert second in secret_names(k8s, namespace)
    trigger.refresh_from_db()
    services.trigger_set_secrets(trigger=trigger, values={"SHARED": "t"})
    deploy_now(trigger)  # hello-00003 reads API_KEY from `second`, SHARED from a third Secret; not `first`
    delete_revision(k8s, namespace, "hello-00002")  # what only it read goes with it
    wait_for(lambda: first not in secret_names(k8s, namespace), message="`first` garbage-collected")
    assert owners(second) == ["hello-00003"]


def delete_revision(k8s, namespace: str, name: str) -> None:
    k8s.custom.delete_namespaced_custom_object("serving.knative.dev", "v1", namespace, "revisions", name)


def test_teardown_deletes_a_superseded_secret_whose_deploy_never_settled(namespace, tenant_a, alice, k8s, cluster):
    trigger = services.trigger_create(tenant=tenant_a, user=alice, name="hello", image="kubesim/echo",
                                      secret_values={"API_KEY": "k1"})
    first = f"hello-env-{trigger.secret_env['API_KEY']['version']}"
    deployment = Deployment.objects.create(trigger=trigger, spec_version=trigger.spec_version)
    deploys.deployment_apply(deployment.pk)  # applied (its manifest reads `first`), never polled: not owned
    services.trigger_set_secrets(trigger=Trigger.objects.get(pk=trigger.pk), values={"API_KEY": "k2"})
    assert first in secret_names(k8s, namespace)  # a revision may read it
    deploys._delete_in_cluster(cluster, Trigger.objects.get(pk=trigger.pk))
    assert not {n for n in secret_names(k8s, namespace) if n.startswith("hello-env")}
