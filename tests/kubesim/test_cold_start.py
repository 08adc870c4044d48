"""Cold start: a ksvc scaled to zero gets 100 concurrent requests through the gateway. All are
answered by the handler, there is exactly one activation, and pods and the revision's Active
condition are seen moving through their states in watch events."""

from __future__ import annotations

import asyncio
import json
import threading

import aiohttp
from kubernetes import client, watch

from tests.kubesim.kn_helpers import KSVC, G, V, cond, get_rev, kservice, wait_for, wait_ready


def _watch(fn, args, out: list, stop: threading.Event, **kw) -> threading.Thread:
    def run() -> None:
        w = watch.Watch()
        for ev in w.stream(fn, *args, timeout_seconds=8, **kw):
            out.append(ev)
            if stop.is_set():
                w.stop()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


async def test_hundred_requests_wake_a_revision_once(sim, k8s, custom, core, ns):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice("cold", "echo"))
    wait_ready(custom, ns, "cold")
    wait_for(lambda: get_rev(custom, ns, "cold-00001")["status"].get("actualReplicas") == 0
             and not core.list_namespaced_pod(ns).items, 5)
    rt = sim.sim.serving.revisions[(ns, "cold-00001")]
    assert rt.activations == 0
    rv = core.list_namespaced_pod(ns).metadata.resource_version
    pod_events: list = []
    rev_events: list = []
    stop = threading.Event()
    threads = [
        _watch(core.list_namespaced_pod, (ns,), pod_events, stop, resource_version=rv),
        _watch(custom.list_namespaced_custom_object, (G, V, ns, "revisions"), rev_events, stop,
               resource_version=rv)]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as s:
        async def req(i: int) -> tuple[int, dict]:
            async with s.post(sim.gateway_url + f"/n/{i}", data=b"x" * i,
                              headers={"Host": f"cold.{ns}.example.com"}) as r:
                return r.status, json.loads(await r.read())

        results = await asyncio.gather(*[req(i) for i in range(100)])
    assert [st for st, _ in results] == [200] * 100
    assert sorted(b["path"] for _, b in results) == sorted(f"/n/{i}" for i in range(100))
    assert all(b["body_size"] == i for i, (_, b) in enumerate(results))
    assert rt.activations == 1
    pods = {b["pod"] for _, b in results}
    assert len(pods) == 1
    wait_for(lambda: any(cond(e["object"], "Active")[0] == "True" for e in rev_events), 3)
    stop.set()
    actives = [cond(e["object"], "Active")[:2] for e in rev_events
               if e["object"]["metadata"]["name"] == "cold-00001"]
    assert ("Unknown", "Queued") in actives
    assert actives.index(("Unknown", "Queued")) < actives.index(("True", None))
    pod_states = []
    for e in pod_events:
        p: client.V1Pod = e["object"]
        ready = {c.type: c.status for c in p.status.conditions or []}.get("Ready")
        pod_states.append((e["type"], p.status.phase, ready))
    assert pod_states[0][0] == "ADDED" and pod_states[0][1] == "Pending"
    assert ("MODIFIED", "Running", "False") in pod_states
    assert ("MODIFIED", "Running", "True") in pod_states
    for t in threads:
        t.join(0.1)
