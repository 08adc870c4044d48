"""The Ambassador data plane: routing by Host, Knative headers, handler behaviours, error bodies
(404 no route, 503 queue full, 504 timeouts)."""

from __future__ import annotations

import asyncio
import hashlib
import json

import aiohttp
from kubernetes import client, config

from tests.kubesim.kn_helpers import (
    KSVC,
    G,
    V,
    cluster_of,
    cond,
    get_rev,
    gw,
    kservice,
    wait_for,
    wait_ready,
)


def _custom(st) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(config.new_client_from_config(config_file=st.kubeconfig_path))


def _make(custom, ns, name, image, **kw):
    custom.create_namespaced_custom_object(G, V, ns, KSVC, kservice(name, image, **kw))
    return wait_ready(custom, ns, name, timeout=8)


def test_routes_by_host_and_adds_knative_headers(sim, custom, ns):
    _make(custom, ns, "echo", "registry.invalid/anything/echo:v1",
          template_annotations={"autoscaling.knative.dev/min-scale": "1"})
    body = json.dumps({"hello": "world"}).encode()
    for host in (f"echo.{ns}.example.com:8080", f"echo.{ns}", f"echo.{ns}.svc.cluster.local"):
        status, headers, raw = gw(sim, host, "/hooks/x?a=1&b=2", "POST", body,
                                  {"Content-Type": "application/json", "X-Custom": "yes"})
        assert status == 200 and headers["server"] == "envoy"
        data = json.loads(raw)
        assert data["method"] == "POST" and data["path"] == "/hooks/x" and data["query"] == "a=1&b=2"
        assert data["headers"]["Knative-Serving-Revision"] == "echo-00001"
        assert data["headers"]["Knative-Serving-Namespace"] == ns
        assert data["headers"]["X-Custom"] == "yes"
        assert data["body_size"] == len(body)
        assert data["body_sha256"] == hashlib.sha256(body).hexdigest()
        assert data["body"] == body.decode()


def test_helloworld_and_fixed_status(sim, custom, ns):
    _make(custom, ns, "hw", "gcr.io/knative-samples/helloworld-go")
    assert gw(sim, f"hw.{ns}.example.com")[::2] == (200, b"Hello World!\n")
    _make(custom, ns, "s", "kubesim/status:503")
    assert gw(sim, f"s.{ns}.example.com")[0] == 503


def test_flaky_fails_n_times_then_succeeds(sim, custom, ns):
    _make(custom, ns, "fl", "kubesim/flaky:2",
          template_annotations={"autoscaling.knative.dev/min-scale": "1"})
    codes = [gw(sim, f"fl.{ns}.example.com")[0] for _ in range(4)]
    assert codes == [500, 500, 200, 200]


def test_no_route_is_404_with_an_empty_body(sim):
    status, _, body = gw(sim, "nobody.nowhere.example.com")
    assert (status, body) == (404, b"")


def test_revision_timeout_is_504_request_timeout(sim, custom, ns):
    _make(custom, ns, "slow", "kubesim/slow:3s", timeoutSeconds=1)
    status, _, body = gw(sim, f"slow.{ns}.example.com")
    assert (status, body) == (504, b"request timeout")


def test_route_timeout_is_504_upstream_request_timeout(make_sim, ns):
    st = make_sim(route_timeout=0.3)
    custom = _custom(st)
    from kubernetes.client import CoreV1Api
    CoreV1Api(custom.api_client).create_namespace({"metadata": {"name": ns}})
    _make(custom, ns, "rt", "kubesim/slow:1s")
    status, _, body = gw(st, f"rt.{ns}.example.com")
    assert (status, body) == (504, b"upstream request timeout")
    diag = json.loads(gw_admin(st, "/ambassador/v0/diag/?json=true&filter=cluster_stats"))
    assert diag[cluster_of("rt-00001", ns)]["upstream_5xx"] == 1


def gw_admin(st, path: str) -> bytes:
    import urllib.request
    return urllib.request.urlopen(st.admin_url + path, timeout=5).read()


async def test_queue_full_503_and_activation_timeout_504(make_sim, ns):
    st = make_sim(queue_depth=2, activation_timeout=0.8, progress_deadline=5.0)
    custom = _custom(st)
    client.CoreV1Api(custom.api_client).create_namespace({"metadata": {"name": ns}})
    _make(custom, ns, "q", "kubesim/slow-start:300ms")
    _make(custom, ns, "to", "kubesim/slow-start:1500ms")
    for rev in ("q-00001", "to-00001"):
        wait_for(lambda r=rev: get_rev(custom, ns, r)["status"].get("actualReplicas") == 0, 5)
    async with aiohttp.ClientSession() as s:
        async def req(host: str) -> tuple[int, str]:
            async with s.get(st.gateway_url + "/", headers={"Host": host}) as r:
                return r.status, await r.text()

        results = await asyncio.gather(*[req(f"q.{ns}.example.com") for _ in range(5)])
        codes = sorted(code for code, _ in results)
        assert codes == [200, 200, 503, 503, 503]
        assert {t for c, t in results if c == 503} == {"pending request queue full"}
        assert await req(f"to.{ns}.example.com") == (504, "activator request timeout")
    rev = wait_for(lambda: (r := get_rev(custom, ns, "to-00001")) and
                   cond(r, "Active")[1] == "TimedOut" and r, 3)
    assert cond(rev, "Active") == ("False", "TimedOut", "The target could not be activated.")


def test_a_big_body_is_written_as_it_is_produced_with_its_content_length(sim, custom, ns):
    _make(custom, ns, "big", "kubesim/big:3Mi")
    status, headers, raw = gw(sim, f"big.{ns}.example.com")
    length = {k.lower(): v for k, v in headers.items()}["content-length"]
    assert status == 200 and length == str(3 * 1024 * 1024) and len(raw) == 3 * 1024 * 1024
    assert raw == bytes(range(256)) * (3 * 4096)
