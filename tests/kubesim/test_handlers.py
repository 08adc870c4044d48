"""Image name -> behaviour mapping of the simulated handler containers."""

from __future__ import annotations

import hashlib
import json

import pytest

from kubesim.handlers import Container, Request, behaviour_for, image_digest, parse_image


@pytest.mark.parametrize("image,kind", [
    ("gcr.io/knative-samples/helloworld-go", "hello"),
    ("docker.io/library/nginx:1.25", "echo"),
    ("my.registry:5000/x/y/echo:v2", "echo"),
    ("kubesim/status:418", "status"),
    ("kubesim/slow:250ms", "slow"),
    ("kubesim/flaky:3", "flaky"),
])
def test_kinds(image, kind):
    assert behaviour_for(image).kind == kind


def test_failure_images():
    assert behaviour_for("acme/pull-fail").digest_error.endswith(
        "MANIFEST_UNKNOWN: manifest unknown; map[Tag:latest]")
    assert behaviour_for("acme/app:missing").digest_error
    assert behaviour_for("acme/pull-backoff:1").pull_error
    assert behaviour_for("acme/crash").crash
    assert behaviour_for("acme/slow-start:2s").start_delay == 2.0
    assert behaviour_for("acme/slow:1500ms").delay == 1.5
    assert behaviour_for("acme/status:503").status == 503


def test_parse_image_and_digest():
    ref = parse_image("nginx")
    assert (ref.registry, ref.repository, ref.tag) == ("docker.io", "library/nginx", "latest")
    ref = parse_image("localhost:5000/a/b:c")
    assert (ref.registry, ref.repository, ref.tag) == ("localhost:5000", "a/b", "c")
    assert image_digest("a/b:1").startswith("a/b@sha256:")


def test_echo_payload_and_hello_target():
    req = Request("POST", "/p", "q=1", {"X": "y"}, b"abc")
    status, body, ctype = Container(behaviour_for("echo"), "pod-1").respond(req)
    data = json.loads(body)
    assert status == 200 and ctype == "application/json"
    assert data["body_sha256"] == hashlib.sha256(b"abc").hexdigest() and data["pod"] == "pod-1"
    hello = Container(behaviour_for("helloworld-go", {"TARGET": "Knative"}), "p")
    assert hello.respond(req)[1] == b"Hello Knative!\n"


@pytest.mark.parametrize("tag,size", [("200Mi", 200 * 1024 ** 2), ("64Ki", 65536), ("1G", 10 ** 9), ("5000", 5000),
                                      ("latest", 1024 * 1024), ("10xb", 1024 * 1024)])
def test_big_answers_a_generated_body_of_the_tagged_size(tag, size):
    behaviour = behaviour_for(f"kubesim/big:{tag}")
    assert (behaviour.kind, behaviour.size) == ("big", size)


def test_a_generated_body_is_produced_in_blocks_never_whole():
    status, body, ctype = Container(behaviour_for("kubesim/big:100000"), "p").respond(Request("GET", "/", "", {}, b""))
    assert (status, ctype, body.size) == (200, "application/octet-stream", 100000)
    chunks = list(body.chunks())
    assert [len(c) for c in chunks] == [65536, 100000 - 65536]
    assert b"".join(chunks) == (bytes(range(256)) * 400)[:100000]
