"""Watch through the official client's `watch.Watch`: per-event flushing, resume, 410, bookmarks,
server-side timeouts, selectors (entering/leaving), cluster-wide and per namespace."""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time

import pytest
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from tests.kubesim.helpers import KSVC, G, V, cm, ksvc, raw


def _collect(stream, into: list, stop_after: int | None = None) -> threading.Thread:
    def run():
        for ev in stream:
            into.append(ev)
            if stop_after is not None and len(into) >= stop_after:
                break

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_initial_added_then_live_events(core, ns):
    core.create_namespaced_config_map(ns, cm("before"))
    events: list = []
    w = watch.Watch()
    t = _collect(w.stream(core.list_namespaced_config_map, ns, timeout_seconds=5), events, 4)
    deadline = time.monotonic() + 5
    while not events and time.monotonic() < deadline:
        time.sleep(0.01)
    core.create_namespaced_config_map(ns, cm("after"))
    core.patch_namespaced_config_map("after", ns, {"data": {"k": "v2"}})
    core.delete_namespaced_config_map("after", ns)
    t.join(5)
    w.stop()
    got = [(e["type"], e["object"].metadata.name) for e in events]
    assert got == [("ADDED", "before"), ("ADDED", "after"), ("MODIFIED", "after"),
                   ("DELETED", "after")]
    assert all(isinstance(e["object"].metadata.resource_version, str) for e in events)


def test_events_are_flushed_one_by_one(core, ns):
    """A live event arrives while the stream stays open (chunked, flushed per event)."""
    events: list = []
    w = watch.Watch()
    t = _collect(w.stream(core.list_namespaced_config_map, ns, timeout_seconds=10), events, 1)
    time.sleep(0.1)
    start = time.monotonic()
    core.create_namespaced_config_map(ns, cm("live"))
    t.join(5)
    w.stop()
    assert events and time.monotonic() - start < 2.0


def test_resume_from_resource_version(core, ns):
    a = core.create_namespaced_config_map(ns, cm("a"))
    core.create_namespaced_config_map(ns, cm("b"))
    core.patch_namespaced_config_map("a", ns, {"data": {"x": "1"}})
    events = list(watch.Watch().stream(core.list_namespaced_config_map, ns,
                                       resource_version=a.metadata.resource_version,
                                       timeout_seconds=1))
    assert [(e["type"], e["object"].metadata.name) for e in events] == [("ADDED", "b"),
                                                                        ("MODIFIED", "a")]


def test_server_enforces_timeout_seconds(core, ns):
    start = time.monotonic()
    events = list(watch.Watch().stream(core.list_namespaced_config_map, ns, timeout_seconds=1))
    elapsed = time.monotonic() - start
    assert events == [] and 0.9 <= elapsed < 3


def test_too_old_resource_version_is_410_expired(make_sim):
    from kubernetes import client

    from tests.kubesim.conftest import api_client

    st = make_sim(watch_history=5)
    core = client.CoreV1Api(api_client(st))
    first = core.create_namespaced_config_map("default", cm("c0"))
    for i in range(1, 12):
        core.create_namespaced_config_map("default", cm(f"c{i}"))
    with pytest.raises(ApiException) as e:
        list(watch.Watch().stream(core.list_namespaced_config_map, "default",
                                  resource_version=first.metadata.resource_version,
                                  timeout_seconds=2))
    assert e.value.status == 410 and "Expired" in e.value.reason
    assert "too old resource version" in e.value.reason


def test_expired_event_is_an_error_line_with_code_reason_message(make_sim):
    from tests.kubesim.conftest import api_client

    st = make_sim(watch_history=3)
    k8s = api_client(st)
    for i in range(6):
        raw(k8s, "POST", "/api/v1/namespaces/default/configmaps", f'{{"metadata":{{"name":"c{i}"}}}}')
    code, body, headers = raw(k8s, "GET", "/api/v1/namespaces/default/configmaps?watch=true&"
                                          "resourceVersion=2&timeoutSeconds=1")
    assert code == 200
    assert body["type"] == "ERROR"
    status = body["object"]
    assert status["code"] == 410 and status["reason"] == "Expired"
    assert status["message"].startswith("too old resource version: 2 (")


def test_bookmarks_when_asked(k8s, core, ns):
    code, data, headers = raw(k8s, "GET", f"/api/v1/namespaces/{ns}/configmaps?watch=true&"
                                          "allowWatchBookmarks=true&timeoutSeconds=1")
    assert code == 200 and headers.get("Transfer-Encoding") == "chunked"
    text = data if isinstance(data, bytes) else str(data).encode()
    lines = [ln for ln in text.split(b"\n") if ln]
    assert lines and all(b'"BOOKMARK"' in ln for ln in lines)
    assert b"\n\n" not in text  # never a blank line
    code, data, _ = raw(k8s, "GET", f"/api/v1/namespaces/{ns}/configmaps?watch=true&timeoutSeconds=1")
    assert data == b""  # no bookmarks unless asked


def test_label_selector_watch_sees_objects_enter_and_leave(core, ns):
    core.create_namespaced_config_map(ns, cm("x", labels={"app": "a"}))
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    core.patch_namespaced_config_map("x", ns, {"metadata": {"labels": {"app": "b"}}})
    core.patch_namespaced_config_map("x", ns, {"metadata": {"labels": {"app": "a"}}})
    core.patch_namespaced_config_map("x", ns, {"data": {"z": "1"}})
    core.create_namespaced_config_map(ns, cm("other", labels={"app": "c"}))
    events = list(watch.Watch().stream(core.list_namespaced_config_map, ns, resource_version=rv,
                                       label_selector="app in (a)", timeout_seconds=1))
    assert [e["type"] for e in events] == ["DELETED", "ADDED", "MODIFIED"]


def test_field_selector_and_cluster_wide_watch(core, custom, ns):
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, cm("one"))
    core.create_namespaced_config_map(ns, cm("two"))
    evs = list(watch.Watch().stream(core.list_config_map_for_all_namespaces, resource_version=rv,
                                    field_selector=f"metadata.name=two,metadata.namespace={ns}",
                                    timeout_seconds=1))
    assert [(e["type"], e["object"].metadata.name) for e in evs] == [("ADDED", "two")]
    custom.create_namespaced_custom_object(G, V, ns, KSVC, ksvc("w"))
    evs = list(watch.Watch().stream(custom.list_cluster_custom_object, G, V, KSVC,
                                    resource_version=rv, timeout_seconds=1))
    assert ("ADDED", "w") in [(e["type"], e["object"]["metadata"]["name"]) for e in evs]
    assert all(isinstance(e["object"], dict) for e in evs)


def test_custom_object_watch_per_namespace(custom, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, ksvc("k1"))
    evs = list(watch.Watch().stream(custom.list_namespaced_custom_object, G, V, ns, KSVC,
                                    timeout_seconds=1))
    assert evs[0]["type"] == "ADDED" and evs[0]["object"]["metadata"]["name"] == "k1"
    assert {e["object"]["metadata"]["namespace"] for e in evs} == {ns}


def test_client_resumes_after_the_server_closes_the_stream(sim, core, ns):
    """Without timeout_seconds the client re-watches from its last RV: no event lost or repeated."""
    events: list = []
    w = watch.Watch()
    t = _collect(w.stream(core.list_namespaced_config_map, ns), events, 3)
    core.create_namespaced_config_map(ns, cm("a"))
    deadline = time.monotonic() + 5
    while len(events) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sim.call(lambda: sim.sim.faults.drop_watches("close")) >= 1
    core.create_namespaced_config_map(ns, cm("b"))
    core.create_namespaced_config_map(ns, cm("c"))
    t.join(5)
    w.stop()
    assert [e["object"].metadata.name for e in events] == ["a", "b", "c"]


def test_client_gone_mid_watch_logs_no_error(sim, core, ns, caplog):
    """Writing events to a watch whose client reset the connection is routine: debug, no traceback."""
    host, port = sim.api_url.split("//")[1].rsplit(":", 1)
    socks = []
    for _ in range(3):
        s = socket.create_connection((host, int(port)))
        s.sendall(f"GET /api/v1/namespaces/{ns}/configmaps?watch=true HTTP/1.1\r\nHost: x\r\n"
                  f"Authorization: Bearer {sim.token}\r\n\r\n".encode())
        assert s.recv(100).startswith(b"HTTP/1.1 200")
        socks.append(s)
    caplog.set_level(logging.DEBUG, logger="kubesim")
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        s.close()
    for i in range(10):
        core.create_namespaced_config_map(ns, {"metadata": {"name": f"c{i}"}, "data": {"k": "v" * 20000}})
    deadline = time.monotonic() + 5
    while sum("watch client disconnected" in r.getMessage() for r in caplog.records) < 3:
        assert time.monotonic() < deadline, "the watches did not notice their clients were gone"
        time.sleep(0.05)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


def test_cluster_wide_event_watch_by_involved_object_kind(core, ns):
    """What relayweb's watcher asks for: only pods' events, from every namespace."""
    seen: list = []
    t = _collect(watch.Watch().stream(core.list_event_for_all_namespaces, field_selector="involvedObject.kind=Pod",
                                      timeout_seconds=2), seen)
    time.sleep(0.3)
    for kind in ("Pod", "Service"):
        core.create_namespaced_event(ns, {"metadata": {"name": f"e-{kind.lower()}"}, "reason": "R", "message": "m",
                                          "involvedObject": {"kind": kind, "name": "x", "namespace": ns}})
    t.join(5)
    names = [e["object"].metadata.name for e in seen if e["object"].metadata.namespace == ns]
    assert names == ["e-pod"]
    listed = core.list_event_for_all_namespaces(field_selector="involvedObject.kind=Pod").items
    assert {e.metadata.name for e in listed if e.metadata.namespace == ns} == {"e-pod"}
