"""The real kubectl against kubesim: get/describe/apply/delete of a ksvc and `get pods -l`, with tables.

kubectl sends its bearer token only over TLS, so this simulator serves the API over HTTPS (api_tls).
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap

import pytest

from tests.kubesim.helpers import wait_for

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"

pytestmark = pytest.mark.skipif(not shutil.which("kubectl") and not
                                __import__("os").path.exists(KUBECTL), reason="kubectl not installed")

KSVC_YAML = textwrap.dedent("""\
    apiVersion: serving.knative.dev/v1
    kind: Service
    metadata:
      name: hello
      namespace: demo
      labels: {app: hello}
    spec:
      template:
        metadata:
          # the pod listed below must outlive the test's kubectl calls (a min-scale-0 pod lives for the
          # stable window only, under a second here, and a loaded run missed it)
          annotations: {autoscaling.knative.dev/min-scale: "1"}
        spec:
          containers:
          - image: gcr.io/knative-samples/helloworld-go
    """)


@pytest.fixture(scope="module")
def tls_sim(tmp_path_factory):
    from kubesim.config import SimConfig
    from kubesim.sim import SimulatorThread
    from tests.kubesim.conftest import FAST

    path = tmp_path_factory.mktemp("kubectl") / "kubeconfig"
    st = SimulatorThread(SimConfig(kubeconfig=str(path), api_tls=True, **FAST)).start()
    yield st
    st.stop()


@pytest.fixture
def kubectl(tls_sim, tmp_path):
    def run(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([KUBECTL, "--kubeconfig", tls_sim.kubeconfig_path, *args],
                              input=stdin, capture_output=True, text=True, timeout=30,
                              env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc
    return run


def _table(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


def test_kubectl_lifecycle_of_a_ksvc(kubectl):
    kubectl("create", "namespace", "demo")
    out = kubectl("apply", "--validate=false", "-f", "-", stdin=KSVC_YAML).stdout
    assert "service.serving.knative.dev/hello created" in out

    def ready() -> bool:
        rows = _table(kubectl("get", "ksvc", "-n", "demo").stdout)
        return rows[0][:6] == ["NAME", "URL", "LATESTCREATED", "LATESTREADY", "READY", "REASON"] \
            and rows[1][0] == "hello" and "True" in rows[1]

    wait_for(ready, timeout=10, interval=0.1)
    rows = _table(kubectl("get", "kservice", "hello", "-n", "demo").stdout)
    assert rows[1][:5] == ["hello", "http://hello.demo.example.com", "hello-00001", "hello-00001",
                           "True"]

    pods = _table(kubectl("get", "pods", "-n", "demo", "-l", "serving.knative.dev/service=hello")
                  .stdout)
    assert pods[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert pods[1][0].startswith("hello-00001-deployment-") and pods[1][1:3] == ["2/2", "Running"]
    none = kubectl("get", "pods", "-n", "demo", "-l", "serving.knative.dev/service=other")
    assert "No resources found" in none.stderr

    for short in ("rev", "king", "rt", "cfg"):
        assert "hello" in kubectl("get", short, "-n", "demo").stdout

    described = kubectl("describe", "ksvc", "hello", "-n", "demo").stdout
    assert "Name:         hello" in described and "Namespace:    demo" in described
    assert "serving.knative.dev/creator" in described and "Latest Ready Revision Name" in described

    updated = KSVC_YAML.replace("app: hello", "app: hello2")
    out = kubectl("apply", "--validate=false", "-f", "-", stdin=updated).stdout
    assert "configured" in out
    labels = kubectl("get", "ksvc", "hello", "-n", "demo", "-o",
                     "jsonpath={.metadata.labels.app}").stdout
    assert labels == "hello2"

    out = kubectl("delete", "ksvc", "hello", "-n", "demo").stdout
    assert 'service.serving.knative.dev "hello" deleted' in out
    missing = kubectl("get", "ksvc", "hello", "-n", "demo", check=False)
    assert missing.returncode != 0
    assert 'services.serving.knative.dev "hello" not found' in missing.stderr
    wait_for(lambda: "No resources found" in kubectl("get", "pods", "-n", "demo").stderr,
             timeout=10, interval=0.1)


def test_kubectl_get_namespaces_and_api_resources(kubectl):
    rows = _table(kubectl("get", "ns").stdout)
    assert rows[0] == ["NAME", "STATUS", "AGE"]
    assert ["knative-serving", "Active"] == [r for r in rows if r[0] == "knative-serving"][0][:2]
    res = kubectl("api-resources").stdout
    ksvc = [line for line in res.splitlines() if line.startswith("services") and "knative" in line]
    assert ksvc and "kservice,ksvc" in ksvc[0] and "Service" in ksvc[0]


def test_kubectl_without_the_token_is_refused(tls_sim, tmp_path):
    proc = subprocess.run([KUBECTL, "--server", tls_sim.api_url, "--insecure-skip-tls-verify", "--token", "wrong",
                           "get", "ns"], capture_output=True, text=True, timeout=30,
                          env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode != 0
    assert "Unauthorized" in proc.stderr or "provide credentials" in proc.stderr
