"""Settings come from the environment; production refuses to start without a secret key."""

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from relayweb import settings as relay_settings
from tests.cluster import REPO


def run_manage(*args, env: dict) -> subprocess.CompletedProcess:
    dropped = ("DEBUG", "SECRET_KEY", "DATABASE_URL", "SECURE_SSL_REDIRECT", "DJANGO_SETTINGS_MODULE")
    clean = {k: v for k, v in os.environ.items() if k not in dropped}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env={**clean, **env},
        capture_output=True, text=True, timeout=120,
    )


def test_envbool_envint(monkeypatch):
    monkeypatch.setenv("X_FLAG", "yes")
    monkeypatch.setenv("X_NUM", "42")
    assert relay_settings.envbool("X_FLAG") is True
    assert relay_settings.envbool("X_UNSET_FLAG") is False
    assert relay_settings.envint("X_NUM", "1") == 42
    monkeypatch.setenv("X_NUM", "forty")
    with pytest.raises(ImproperlyConfigured, match="X_NUM must be a whole number"):
        relay_settings.envint("X_NUM", "1")


def test_envsecret_reads_name_file(monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    monkeypatch.setenv("X_SECRET", "from-env")
    assert relay_settings.envsecret("X_SECRET") == "from-env"
    monkeypatch.setenv("X_SECRET_FILE", str(secret))
    assert relay_settings.envsecret("X_SECRET") == "from-file"
    monkeypatch.setenv("X_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="cannot be read"):
        relay_settings.envsecret("X_SECRET")


def test_production_refuses_to_start_without_a_secret_key():
    result = run_manage("check", env={})
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_debug_has_a_development_secret_key():
    result = run_manage("check", env={"DEBUG": "1"})
    assert result.returncode == 0, result.stderr


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    key = tmp_path / "key"
    key.write_text("p" * 20 + "-production-secret-key-" + "q" * 30)
    result = run_manage(
        "check", "--deploy", "--fail-level", "WARNING",
        env={"SECRET_KEY_FILE": str(key), "ALLOWED_HOSTS": "relay.example.com"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_database_url_switches_to_postgresql(tmp_path):
    code = "from django.conf import settings; d = settings.DATABASES['default']; print(d['ENGINE'], d['NAME'])"
    result = run_manage(
        "shell", "-v", "0", "-c", code, env={"DEBUG": "1", "DATABASE_URL": "postgres://u@db.internal:5432/relay"}
    )
    assert result.stdout.split() == ["django.db.backends.postgresql", "relay"], result.stderr
    result = run_manage("shell", "-v", "0", "-c", code, env={"DEBUG": "1"})
    assert result.stdout.split()[0] == "django.db.backends.sqlite3"


def test_celery_settings_land_in_the_celery_app(settings):
    from relayweb import celery_app

    conf = celery_app.conf
    assert conf.broker_url == settings.REDIS_URL
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_default_queue == settings.CELERY_TASK_DEFAULT_QUEUE
    assert conf.accept_content == ["json"]


def test_channels_uses_the_redis_layer(settings):
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    assert type(layer).__name__ == "RedisChannelLayer"
    (host,) = settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"]
    assert host["address"] == settings.REDIS_URL
    assert host["socket_timeout"] > layer.brpop_timeout  # else a blocking receive can time out the socket


async def test_channel_layer_round_trips_through_redis():
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("settings-test", channel)
    await layer.group_send("settings-test", {"type": "hello", "n": 1})
    assert (await layer.receive(channel))["n"] == 1
    await layer.group_discard("settings-test", channel)


def _site_url(env: dict) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("SITE_URL", "RELAY_PORT", "DJANGO_SETTINGS_MODULE")}
    out = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print(settings.SITE_URL)"],
        cwd=REPO, env={**clean, "DJANGO_SETTINGS_MODULE": "relayweb.settings", "DEBUG": "1", **env},
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_site_url_follows_the_port_make_run_serves_on_unless_it_is_set():
    assert _site_url({}) == "http://localhost:8000"
    assert _site_url({"RELAY_PORT": "8300"}) == "http://localhost:8300"
    assert _site_url({"RELAY_PORT": "8300", "SITE_URL": "https://relay.example.com/"}) == "https://relay.example.com"


def test_make_run_passes_its_port_to_the_web_process():
    out = subprocess.run(["make", "-pn", "run", "PORT=8300"], cwd=REPO, capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in os.environ.items() if k not in ("RELAY_PORT", "PORT")})
    assert "RELAY_PORT := 8300" in out.stdout
