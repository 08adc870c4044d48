"""The Knative webhook through the official client: defaults and each denial, verbatim."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.exceptions import ApiException

from kubesim.knative_admission import admit_service
from tests.kubesim.kn_helpers import KSVC, G, V, kservice

DENIED = ('admission webhook "validation.webhook.serving.knative.dev" denied the request: '
          "validation failed: ")


def _denial(custom, ns, body) -> str:
    with pytest.raises(ApiException) as ei:
        custom.create_namespaced_custom_object(G, V, ns, KSVC, body)
    assert ei.value.status == 400
    st = json.loads(ei.value.body)
    assert st["reason"] == "BadRequest" and st["code"] == 400
    assert st["message"].startswith(DENIED)
    return st["message"][len(DENIED):]


def test_defaults_are_added(sim, custom, ns):
    obj = custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice("d"))
    spec = obj["spec"]
    tmpl = spec["template"]["spec"]
    assert tmpl["containers"] == [{"image": "gcr.io/knative-samples/helloworld-go",
                                   "name": "user-container",
                                   "readinessProbe": {"successThreshold": 1,
                                                      "tcpSocket": {"port": 0}},
                                   "resources": {}}]
    assert tmpl["containerConcurrency"] == 0 and tmpl["timeoutSeconds"] == 300
    assert tmpl["enableServiceLinks"] is False
    assert spec["template"]["metadata"] == {"creationTimestamp": None}
    assert spec["traffic"] == [{"latestRevision": True, "percent": 100}]
    ann = obj["metadata"]["annotations"]
    assert ann["serving.knative.dev/creator"] == sim.sim.config.user
    assert ann["serving.knative.dev/lastModifier"] == sim.sim.config.user


def test_last_modifier_changes_only_with_the_spec():
    svc = admit_service("CREATE", kservice("x") | {"metadata": {"name": "x"}}, None, "alice")
    relabel = json.loads(json.dumps(svc))
    relabel["metadata"]["labels"] = {"a": "b"}
    same = admit_service("UPDATE", relabel, svc, "bob")
    assert same["metadata"]["annotations"]["serving.knative.dev/lastModifier"] == "alice"
    changed = json.loads(json.dumps(svc))
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "echo:2"
    new = admit_service("UPDATE", changed, svc, "bob")
    assert new["metadata"]["annotations"]["serving.knative.dev/lastModifier"] == "bob"
    assert new["metadata"]["annotations"]["serving.knative.dev/creator"] == "alice"


def test_timeout_above_600_is_denied(custom, ns):
    assert _denial(custom, ns, kservice("t", timeoutSeconds=700)) == \
        "expected 0 <= 700 <= 600: spec.template.spec.timeoutSeconds"


def test_exactly_one_container_with_an_image(custom, ns):
    two = kservice("two")
    two["spec"]["template"]["spec"]["containers"].append({"image": "b"})
    assert _denial(custom, ns, two) == \
        "expected exactly one, got both: spec.template.spec.containers"
    none = kservice("none")
    none["spec"]["template"]["spec"]["containers"] = [{"name": "c"}]
    assert _denial(custom, ns, none) == \
        "missing field(s): spec.template.spec.containers[0].image"


def test_name_must_be_a_dns_1035_label(custom, ns):
    msg = _denial(custom, ns, kservice("1abc"))
    assert msg.startswith("not a DNS 1035 label: [a DNS-1035 label must consist of lower case")
    assert msg.endswith(": metadata.name")


def test_autoscaling_annotation_on_the_service_is_denied(custom, ns):
    body = kservice("as")
    body["metadata"]["annotations"] = {"autoscaling.knative.dev/minScale": "1"}
    assert _denial(custom, ns, body) == (
        'invalid key name "autoscaling.knative.dev/minScale": metadata.annotations\n'
        'autoscaling annotations must be put under "spec.template.metadata.annotations" to work')


def test_min_scale_above_max_scale_is_denied(custom, ns):
    body = kservice("mm", template_annotations={"autoscaling.knative.dev/min-scale": "3",
                                                "autoscaling.knative.dev/max-scale": "1"})
    p = "spec.template.metadata.annotations.autoscaling.knative.dev"
    assert _denial(custom, ns, body) == \
        f"max-scale=1 is less than min-scale=3: {p}/max-scale, {p}/min-scale"


def test_creator_annotation_is_immutable(custom, ns):
    obj = custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice("c"))
    obj["metadata"]["annotations"]["serving.knative.dev/creator"] = "mallory"
    with pytest.raises(ApiException) as ei:
        custom.replace_namespaced_custom_object(G, V, ns, KSVC, "c", obj)
    assert ei.value.status == 400
    assert json.loads(ei.value.body)["message"] == DENIED + (
        "annotation value is immutable: metadata.annotations.serving.knative.dev/creator")
    # a PUT without the annotations is the same change
    del obj["metadata"]["annotations"]
    with pytest.raises(ApiException):
        custom.replace_namespaced_custom_object(G, V, ns, KSVC, "c", obj)


def test_merge_patch_keeps_the_annotations(custom, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice("p"))
    out = custom.patch_namespaced_custom_object(G, V, ns, KSVC, "p",
                                                {"metadata": {"labels": {"x": "y"}}})
    assert "serving.knative.dev/creator" in out["metadata"]["annotations"]


def _with_ports(name: str, *ports: dict, extra_containers: list | None = None) -> dict:
    body = kservice(name)
    body["spec"]["template"]["spec"]["containers"][0]["ports"] = list(ports)
    if extra_containers:
        body["spec"]["template"]["spec"]["containers"] += extra_containers
    return body


@pytest.mark.parametrize("port", [8008, 8012, 8013, 8022, 9090, 9091])
def test_knatives_reserved_ports_are_refused_with_its_message(sim, custom, ns, port):
    text = _denial(custom, ns, _with_ports(f"p{port}", {"containerPort": port}))
    assert text == (f"invalid value: {port} is a reserved port: spec.template.spec.containers[0].ports.containerPort\n"
                    f"{port} is a reserved port, please use a different value")


def test_a_port_name_other_than_h2c_or_http1_is_refused(sim, custom, ns):
    text = _denial(custom, ns, _with_ports("named", {"containerPort": 8080, "name": "web"}))
    assert text == ("Port name web is not allowed: spec.template.spec.containers[0].ports\n"
                    "Name must be empty, or one of: 'h2c', 'http1'")
    for name in ("h2c", "http1"):
        custom.create_namespaced_custom_object(G, V, ns, KSVC, _with_ports(name, {"containerPort": 8080,
                                                                                  "name": name}))


def test_only_one_port_is_allowed(sim, custom, ns):
    text = _denial(custom, ns, _with_ports("two", {"containerPort": 8080}, {"containerPort": 8081}))
    assert text == ("more than one container port is set: spec.template.spec.containers[*].ports\n"
                    "Only a single port is allowed across all containers")


def test_only_tcp_is_allowed(sim, custom, ns):
    text = _denial(custom, ns, _with_ports("udp", {"containerPort": 8080, "protocol": "UDP"}))
    assert text == "invalid value: UDP: spec.template.spec.containers[0].ports.protocol"
