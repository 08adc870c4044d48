"""`secretKeyRef` / `configMapKeyRef` are resolved by the kubelet when a container starts: a missing Secret,
ConfigMap or key leaves it Waiting CreateContainerConfigError with the kubelet's message; `optional: true`
skips it; once the object appears the pod starts."""

from __future__ import annotations

import pytest

from tests.kubesim.kn_helpers import KSVC, G, V, cond, get_rev, kservice, wait_for, wait_ready


def _ksvc(name: str, ref_kind: str, ref: dict) -> dict:
    svc = kservice(name, "kubesim/echo")
    svc["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "API_KEY", "valueFrom": {ref_kind: ref}}]
    return svc


def _waiting(core, ns: str):
    for p in core.list_namespaced_pod(ns).items:
        for c in p.status.container_statuses or []:
            if c.name == "user-container" and c.state and c.state.waiting and \
                    c.state.waiting.reason == "CreateContainerConfigError":
                return p, c.state.waiting
    return None


@pytest.mark.parametrize(("ref_kind", "make", "message"), [
    ("secretKeyRef", None, 'secret "creds" not found'),
    ("secretKeyRef", "secret", "couldn't find key API_KEY in Secret {ns}/creds"),
    ("configMapKeyRef", None, 'configmap "creds" not found'),
    ("configMapKeyRef", "configmap", "couldn't find key API_KEY in ConfigMap {ns}/creds"),
])
def test_a_missing_source_is_create_container_config_error(custom, core, ns, ref_kind, make, message):
    if make == "secret":
        core.create_namespaced_secret(ns, {"metadata": {"name": "creds"}, "stringData": {"OTHER": "x"}})
    elif make == "configmap":
        core.create_namespaced_config_map(ns, {"metadata": {"name": "creds"}, "data": {"OTHER": "x"}})
    custom.create_namespaced_custom_object(G, V, ns, KSVC, _ksvc("cfg", ref_kind, {"name": "creds", "key": "API_KEY"}))
    pod, waiting = wait_for(lambda: _waiting(core, ns), message="CreateContainerConfigError")
    assert waiting.message == message.format(ns=ns)
    assert pod.status.phase == "Pending"
    failed = [e.message for e in core.list_namespaced_event(ns).items
              if e.reason == "Failed" and e.involved_object.name == pod.metadata.name]
    assert f"Error: {message.format(ns=ns)}" in failed
    # Knative reports it once the progress deadline passes
    wait_for(lambda: cond(get_rev(custom, ns, "cfg-00001"), "ResourcesAvailable")[0] == "False", timeout=5)
    assert cond(get_rev(custom, ns, "cfg-00001"), "ResourcesAvailable") == (
        "False", "CreateContainerConfigError", message.format(ns=ns))


def test_the_pod_starts_once_the_key_exists(make_sim):
    from kubernetes import client

    from tests.kubesim.conftest import api_client

    st = make_sim(progress_deadline=30.0)
    api = api_client(st)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(G, V, "default", KSVC,
                                           _ksvc("late", "secretKeyRef", {"name": "creds", "key": "API_KEY"}))
    wait_for(lambda: _waiting(core, "default"), message="waiting for the secret")
    core.create_namespaced_secret("default", {"metadata": {"name": "creds"}, "stringData": {"API_KEY": "k"}})
    wait_ready(custom, "default", "late", timeout=10)


def test_an_optional_reference_is_skipped(custom, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, _ksvc(
        "opt", "secretKeyRef", {"name": "absent", "key": "API_KEY", "optional": True}))
    wait_ready(custom, ns, "opt")


def test_a_present_key_starts(custom, core, ns):
    core.create_namespaced_secret(ns, {"metadata": {"name": "creds"}, "stringData": {"API_KEY": "k"}})
    ref = {"name": "creds", "key": "API_KEY"}
    custom.create_namespaced_custom_object(G, V, ns, KSVC, _ksvc("ok", "secretKeyRef", ref))
    wait_ready(custom, ns, "ok")
