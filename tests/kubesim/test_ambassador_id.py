"""Ambassador routes only the KIngresses carrying its own ambassador id (Emissary fetch/knative.py
_has_required_annotations); Knative copies the ksvc's annotations to the Route and the KIngress."""

from __future__ import annotations

import time

from tests.kubesim.kn_helpers import KSVC, G, V, cond, get_ksvc, gw, kservice, wait_ready

ID = "getambassador.io/ambassador-id"


def with_id(name: str, ambassador_id: str) -> dict:
    body = kservice(name, labels={"networking.knative.dev/visibility": "cluster-local"})
    body["metadata"]["annotations"] = {ID: ambassador_id}
    return body


def kingress(custom, ns: str, name: str) -> dict:
    return custom.get_namespaced_custom_object("networking.internal.knative.dev", "v1alpha1", ns, "ingresses", name)


def test_the_ksvcs_ambassador_id_reaches_the_kingress_and_a_matching_one_is_routed(sim, custom, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, with_id("mine", "default"))
    wait_ready(custom, ns, "mine")
    assert kingress(custom, ns, "mine")["metadata"]["annotations"][ID] == "default"
    status, _, body = gw(sim, f"mine.{ns}.svc.cluster.local")
    assert status == 200 and body == b"Hello World!\n"


def test_a_kingress_for_another_ambassador_is_ignored_and_the_route_never_ready(sim, custom, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, with_id("theirs", "other-gateway"))
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        time.sleep(0.1)
    ksvc = get_ksvc(custom, ns, "theirs")
    assert cond(ksvc, "RoutesReady")[:2] == ("Unknown", "IngressNotConfigured")
    assert cond(ksvc, "ConfigurationsReady")[0] == "True"  # the revision itself is fine
    assert not (kingress(custom, ns, "theirs").get("status") or {}).get("conditions")
    status, _, body = gw(sim, f"theirs.{ns}.svc.cluster.local")
    assert status == 404 and body == b""  # Envoy: no route for this Host


def test_the_diag_reports_the_configured_ambassador_id(make_sim):
    import json
    import urllib.request

    st = make_sim(ambassador_id="relay-gw", knative_support=False)
    with urllib.request.urlopen(st.admin_url + "/ambassador/v0/diag/?json=true") as response:
        system = json.loads(response.read())["system"]
    assert system["ambassador_id"] == "relay-gw" and system["knative_enabled"] is False
