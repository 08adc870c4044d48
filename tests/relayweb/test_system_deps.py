"""`make test` and `.ci/run` set up the system packages the suite needs (.ci/system-deps): installed with
apt-get as root, else a stop at once with the exact command. Run here against a PATH of our making."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cluster import REPO

SCRIPT = REPO / ".ci" / "system-deps"


def tool(folder: Path, name: str, body: str = "exit 0") -> None:
    path = folder / name
    path.write_text(f"#!/bin/bash\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def bin_dir(tmp_path) -> Path:
    """A PATH with the shell's basics and nothing else: no chromium, no kubectl."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("bash", "id", "env"):
        os.symlink(shutil.which(name), folder / name)
    return folder


def run(bin_dir: Path, uid: str) -> subprocess.CompletedProcess:
    env = {"PATH": str(bin_dir), "RELAY_SYSTEM_DEPS_UID": uid, "HOME": str(bin_dir)}
    return subprocess.run([str(bin_dir / "bash"), str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)


def test_nothing_happens_when_chromium_and_kubectl_are_there(bin_dir):
    tool(bin_dir, "chromium")
    tool(bin_dir, "kubectl")
    tool(bin_dir, "apt-get", "echo apt-get must not run >&2; exit 9")
    done = run(bin_dir, uid="0")
    assert done.returncode == 0 and done.stdout == "" and done.stderr == ""


def test_a_user_who_is_not_root_is_stopped_with_the_exact_command(bin_dir):
    tool(bin_dir, "kubectl")
    done = run(bin_dir, uid="1000")
    assert done.returncode == 1
    assert "sudo apt-get update && sudo apt-get install -y chromium" in done.stderr
    assert "kubernetes-client" not in done.stderr  # only what is missing


def test_root_installs_what_is_missing_with_apt_get(bin_dir, tmp_path):
    calls = tmp_path / "apt-calls"
    # a stand-in apt-get that records its arguments and "installs" by putting the tools on the PATH
    tool(bin_dir, "apt-get", f'echo "$*" >> {calls}\n'
                             f'if [ "$1" = install ]; then printf "#!/bin/bash\\n" > {bin_dir}/chromium; '
                             f'printf "#!/bin/bash\\n" > {bin_dir}/kubectl; /bin/chmod +x {bin_dir}/chromium '
                             f'{bin_dir}/kubectl; fi')
    done = run(bin_dir, uid="0")
    assert done.returncode == 0, done.stderr
    assert calls.read_text().splitlines() == ["update -qq", "install -y -qq chromium kubernetes-client"]


def test_make_test_and_ci_run_call_it_before_the_tests():
    makefile = (REPO / "Makefile").read_text()
    recipe = makefile[makefile.index("\ntest:"):].split("\n\n")[0]
    assert recipe.index("bash .ci/system-deps") < recipe.index("pytest")
    ci = (REPO / ".ci" / "run").read_text()
    assert ci.index("bash .ci/system-deps") < ci.index("make test\n")
