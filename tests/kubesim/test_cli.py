"""`python -m kubesim` as a subprocess: --help documents every knob, it serves, SIGTERM stops it."""

from __future__ import annotations

import dataclasses
import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from kubesim.config import SimConfig

REPO = Path(__file__).resolve().parents[2]

# SimConfig fields that are not flags of their own (addresses are --api/--gateway/--admin HOST:PORT).
_NOT_FLAGS = {"api_host", "api_port", "gateway_host", "gateway_port", "admin_host", "admin_port",
              "extra", "api_tls"}


def test_help_lists_every_flag():
    out = subprocess.run([sys.executable, "-m", "kubesim", "--help"], cwd=REPO, capture_output=True,
                         text=True, timeout=30, check=True).stdout
    for flag in ("--api", "--gateway", "--admin", "--kubeconfig", "--token", "--tls",
                 "--image-pull-delay", "--start-delay", "--stable-window", "--scale-to-zero-grace",
                 "--activation-timeout", "--queue-depth", "--progress-deadline", "--route-timeout"):
        assert flag in out, flag
    for f in dataclasses.fields(SimConfig):
        if f.name not in _NOT_FLAGS:
            assert "--" + f.name.replace("_", "-") in out, f"SimConfig.{f.name} has no flag"
    assert "127.0.0.1:8001" in out and "127.0.0.1:8081" in out and "127.0.0.1:8877" in out


def test_bad_address_is_a_usage_error():
    proc = subprocess.run([sys.executable, "-m", "kubesim", "--api", "nope"], cwd=REPO,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "HOST:PORT" in proc.stderr


def test_serves_writes_kubeconfig_and_stops_on_sigterm(tmp_path):
    kubeconfig = tmp_path / "kc"
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubesim", "--api", "127.0.0.1:0", "--gateway", "127.0.0.1:0",
         "--admin", "127.0.0.1:0", "--kubeconfig", str(kubeconfig), "--token", "s3cret",
         "--image-pull-delay", "0.01", "--log-level", "WARNING"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"api=(\S+) gateway=(\S+) admin=(\S+)", line)
        assert m, line
        api = m.group(1)
        cfg = yaml.safe_load(kubeconfig.read_text())
        assert cfg["clusters"][0]["cluster"]["server"] == api
        assert cfg["users"][0]["user"]["token"] == "s3cret"
        assert cfg["current-context"] == "kubesim"
        assert kubeconfig.stat().st_mode & 0o077 == 0
        req = urllib.request.Request(api + "/api/v1/namespaces",
                                     headers={"Authorization": "Bearer s3cret"})
        body = json.load(urllib.request.urlopen(req, timeout=5))
        assert "knative-serving" in [n["metadata"]["name"] for n in body["items"]]
        with urllib.request.urlopen(m.group(3) + "/ambassador/v0/check_alive", timeout=5) as r:
            assert r.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        start = time.monotonic()
        rc = proc.wait(timeout=10)
    assert rc == 0 and time.monotonic() - start < 5


def test_procfile_passes_a_token_that_starts_with_a_dash():
    """token_urlsafe() starts with "-" one time in 64: `make run` must still hand it to kubesim whole."""
    import shlex

    from kubesim.__main__ import build_parser

    line = next(x for x in (REPO / "Procfile").read_text().splitlines() if x.startswith("kubesim:"))
    token = "-Xk3_token-from-make-run"
    argv = shlex.split(line.split(":", 1)[1].replace("$(cat var/kubesim.token)", token))
    assert argv[:3] == ["python", "-m", "kubesim"]
    assert build_parser().parse_args(argv[3:]).token == token


def test_config_gc_flag_takes_json_or_key_value_pairs():
    from kubesim.__main__ import build_parser, config_from_args

    parser = build_parser()
    args = ["--config-gc", "retain-since-create-time=1s, min-non-active-revisions=0"]
    pairs = config_from_args(parser.parse_args(args))
    assert pairs.extra == {"config-gc": {"retain-since-create-time": "1s", "min-non-active-revisions": "0"}}
    as_json = config_from_args(parser.parse_args(["--config-gc", '{"max-non-active-revisions": 2}']))
    assert as_json.extra == {"config-gc": {"max-non-active-revisions": "2"}}
    assert config_from_args(parser.parse_args([])).extra == {}
    for bad in ("nope", "retain=1s", "[1]"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--config-gc", bad])
