"""Settings for the test suite: the real settings, with test-only defaults for what CI does not set.

DATABASE_URL and REDIS_URL come from the environment (.ci/run sets PostgreSQL and Redis); unset on a
laptop, the suite uses SQLite and starts an embedded Redis. In CI their absence is an error
(tests/conftest.py), never a silent fallback.
"""

import os

from tests.embedded_redis import ensure_redis_url

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production-0123456789abcdef")
os.environ.setdefault("SECURE_SSL_REDIRECT", "False")
os.environ.setdefault("ALLOWED_HOSTS", "localhost,127.0.0.1,testserver")
ensure_redis_url()
# One queue per test run, inherited by the Celery worker processes the tests start.
os.environ.setdefault("CELERY_TASK_DEFAULT_QUEUE", f"relayweb-test-{os.getpid()}")
# and one channel-layer prefix: a group such as tenant-1 starts empty (ids restart with each test database,
# and channels of earlier runs, never discarded, would linger in it for a day).
os.environ.setdefault("RELAY_TEST_CHANNEL_PREFIX", f"relayweb-test-{os.getpid()}:ch:")
os.environ.setdefault("RELAY_DEPLOY_POLL_INTERVAL", "0.2")
os.environ.setdefault("RELAY_INGRESS_CACHE_TTL", "0.2")
os.environ.setdefault("RELAY_RETRY_BASE", "0.2")

from relayweb.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only
CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = os.environ["RELAY_TEST_CHANNEL_PREFIX"]  # noqa: F405
STATIC_ROOT = None  # served from the app folders by WhiteNoise's finders; no collectstatic in tests
WHITENOISE_USE_FINDERS = True

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, not memory: the Celery worker processes of the tests open the same test database.
    os.makedirs(BASE_DIR / "var", exist_ok=True)  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / f"test-{os.getpid()}.sqlite3")}  # noqa: F405
