"""relayweb settings: everything comes from the environment, with embedded defaults.

Unset, it runs on a laptop: SQLite, the embedded Redis that `make run` starts, kubesim.
Every setting is listed in README.md ("Settings").
"""

import ipaddress
import os
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: str = "False") -> bool:
    return os.getenv(name, default).strip().lower() in ("1", "true", "yes", "on")


def envint(name: str, default: str) -> int:
    value = os.getenv(name, default)
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {value!r}") from None


def envsecret(name: str, default: str = "") -> str:
    """A secret from NAME, or from the file named by NAME_FILE (mounted Kubernetes secrets)."""
    path = os.getenv(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as e:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {e.strerror}") from None
    return os.getenv(name, default)


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.getenv(name, default).split(",") if item.strip()]


DEBUG = envbool("DEBUG")

SECRET_KEY = envsecret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY (or SECRET_KEY_FILE) to a long random string, "
            "or DEBUG=1 for local development."
        )
    SECRET_KEY = "relayweb-development-only-key-do-not-use-in-production-0123456789"

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")
# The port the web process serves on (`make run PORT=…` and the Procfile set it); an unset SITE_URL follows it,
# so the webhook URLs and the `curl` shown on a page reach the server that showed them.
RELAY_PORT = envint("RELAY_PORT", "8000")
SITE_URL = (os.getenv("SITE_URL") or f"http://localhost:{RELAY_PORT}").rstrip("/")
# Where senders call webhooks (RELAY_HOOKS_URL/hooks/<token>; empty: SITE_URL). On a host of its own, that
# host serves /hooks/ and nothing else, so relayed handler content never shares the dashboard's origin.
RELAY_HOOKS_URL = os.getenv("RELAY_HOOKS_URL", "").strip().rstrip("/")
if RELAY_HOOKS_URL and (urlsplit(RELAY_HOOKS_URL).scheme not in ("http", "https")
                        or not urlsplit(RELAY_HOOKS_URL).hostname):
    raise ImproperlyConfigured(f"RELAY_HOOKS_URL must be an http(s) URL such as https://hooks.example.com, "
                               f"got {RELAY_HOOKS_URL!r}")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "csp",
    "tenants",
    "triggers",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tenants.audit.AuditMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "relayweb.middleware.ServiceUnavailableMiddleware",
]

ROOT_URLCONF = "relayweb.urls"
ASGI_APPLICATION = "relayweb.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tenants.context_processors.tenants",
            ],
        },
    },
]

# Database: SQLite unless DATABASE_URL is set (postgres://user:pass@host:5432/name uses psycopg2).
DATABASE_URL = envsecret("DATABASE_URL")
DATABASES = {
    # a reused connection is checked before its first query of a request or task (a database restart
    # leaves the pooled ones dead)
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=envint("DB_CONN_MAX_AGE", "60"),
                                     conn_health_checks=True)
    if DATABASE_URL
    else {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "var" / "relayweb.sqlite3"}
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # web, worker and watcher share the file: wait for locks, and take them up front.
    DATABASES["default"].setdefault("OPTIONS", {}).update(timeout=20, transaction_mode="IMMEDIATE")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis: the Celery broker and the Channels layer. `make run` starts an embedded server on 6399.
REDIS_URL = envsecret("REDIS_URL", "redis://127.0.0.1:6399/0")

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = os.getenv("CELERY_TASK_DEFAULT_QUEUE", "relayweb")
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", "3600"),
    # priorities (0 first): the short status checks are not stuck behind a burst of applies
    "queue_order_strategy": "priority",
    "priority_steps": list(range(10)),
    "sep": ":",
}
CELERY_TASK_DEFAULT_PRIORITY = 5
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8 times sockets out after 5 s, exactly channels-redis's 5 s blocking pop: give it room
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}], "prefix": "relayweb:ch:"},
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "tenant-list"
LOGOUT_REDIRECT_URL = "login"
# Sign-in throttling (tenants/throttle.py): this many failed sign-ins for one username, or from one client
# address (and as many bad API tokens from one address), within the window (seconds) block it until the
# window ends.
RELAY_SIGNIN_FAILURES = envint("RELAY_SIGNIN_FAILURES", "10")
RELAY_SIGNIN_WINDOW = envint("RELAY_SIGNIN_WINDOW", str(15 * 60))
# Mail (invitations, password resets): printed on the console with DEBUG, else sent by SMTP.
EMAIL_BACKEND = os.getenv("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend" if DEBUG
                          else "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = os.getenv("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", "25")
EMAIL_HOST_USER = os.getenv("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = envsecret("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS")
EMAIL_USE_SSL = envbool("EMAIL_USE_SSL")
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", "10")
DEFAULT_FROM_EMAIL = os.getenv("DEFAULT_FROM_EMAIL", "relayweb <relayweb@localhost>")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.getenv("STATIC_ROOT", BASE_DIR / "staticfiles"))
# Served by WhiteNoise under uvicorn; in development straight from the app folders.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "relayweb.api.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "relayweb.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "relayweb API",
    "DESCRIPTION": "Webhook triggers on Knative: tenants, members, triggers, deployments, deliveries.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# Production hardening: on whenever DEBUG is off.
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "False" if DEBUG else "True")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if envbool("BEHIND_TLS_PROXY", "True") else None
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", "0" if DEBUG else "31536000")
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", "False" if DEBUG else "True")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
# Pages load only this site's own scripts, styles and fonts (static/, no inline code, no CDN) and talk only to
# this site, websockets included (ws:// or wss:// of SITE_URL, for browsers whose 'self' does not cover them).
# /hooks/ never reaches Django: relayed responses get their own sandbox policy (triggers/edge/headers.py).
_SITE = urlsplit(SITE_URL)
CONTENT_SECURITY_POLICY = {
    "EXCLUDE_URL_PREFIXES": ["/hooks/"],
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],  # data: for the SVG icons in the API docs' stylesheet
        "connect-src": ["'self'", f"{'wss' if _SITE.scheme == 'https' else 'ws'}://{_SITE.netloc}"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.getenv("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# relayweb's own settings.
RELAY_NAMESPACE_PREFIX = os.getenv("RELAY_NAMESPACE_PREFIX", "relay-")
RELAY_API_TOKEN_PREFIX = "rw_"

# The cluster: a kubeconfig file (make run points it at kubesim), else in-cluster credentials.
RELAY_KUBECONFIG = os.getenv("RELAY_KUBECONFIG") or os.getenv("KUBECONFIG", "")
RELAY_KUBE_CONTEXT = os.getenv("RELAY_KUBE_CONTEXT", "")
RELAY_KUBE_TIMEOUT = envint("RELAY_KUBE_TIMEOUT", "15")
RELAY_AMBASSADOR_ID = os.getenv("RELAY_AMBASSADOR_ID", "")
RELAY_GATEWAY_NAMESPACE = os.getenv("RELAY_GATEWAY_NAMESPACE", "ambassador")
RELAY_KNATIVE_NAMESPACE = os.getenv("RELAY_KNATIVE_NAMESPACE", "knative-serving")
RELAY_DEFAULT_CPU_REQUEST = os.getenv("RELAY_DEFAULT_CPU_REQUEST", "50m")
RELAY_DEFAULT_MEMORY_REQUEST = os.getenv("RELAY_DEFAULT_MEMORY_REQUEST", "64Mi")
RELAY_DEFAULT_CPU_LIMIT = os.getenv("RELAY_DEFAULT_CPU_LIMIT", "1")
RELAY_DEFAULT_MEMORY_LIMIT = os.getenv("RELAY_DEFAULT_MEMORY_LIMIT", "512Mi")

# Triggers and deployments.
RELAY_MAX_TRIGGERS_PER_TENANT = envint("RELAY_MAX_TRIGGERS_PER_TENANT", "50")
RELAY_MAX_SCALE_LIMIT = envint("RELAY_MAX_SCALE_LIMIT", "10")
RELAY_DEPLOY_TIMEOUT = envint("RELAY_DEPLOY_TIMEOUT", "600")
RELAY_DEPLOY_POLL_INTERVAL = float(os.getenv("RELAY_DEPLOY_POLL_INTERVAL", "1.0"))
RELAY_RECONCILE_INTERVAL = envint("RELAY_RECONCILE_INTERVAL", "60")
RELAY_STUCK_AFTER = envint("RELAY_STUCK_AFTER", "120")
RELAY_TEARDOWN_BATCH = envint("RELAY_TEARDOWN_BATCH", "10")

CELERY_BEAT_SCHEDULE = {
    "reconcile": {"task": "triggers.tasks.reconcile_all", "schedule": float(RELAY_RECONCILE_INTERVAL)},
    "resume-stuck-deployments": {"task": "triggers.tasks.deployments_resume", "schedule": 30.0},
}

# The webhook ingress (/hooks/<token>): forwards through the Knative gateway (Ambassador).
RELAY_GATEWAY_URL = os.getenv("RELAY_GATEWAY_URL", "http://127.0.0.1:8081").rstrip("/")
RELAY_ACTIVATION_TIMEOUT = float(os.getenv("RELAY_ACTIVATION_TIMEOUT", "130"))
# The gateway's cut-off for one request: Emissary gives every Knative route 15 s (the KIngress path has no
# timeout in Knative 1.x). Trigger timeouts above it are refused; cold starts are waited for outside it.
RELAY_GATEWAY_ROUTE_TIMEOUT = float(os.getenv("RELAY_GATEWAY_ROUTE_TIMEOUT", "15"))
RELAY_MAX_BODY_BYTES = envint("RELAY_MAX_BODY_BYTES", str(1024 * 1024))
RELAY_MAX_URL_BYTES = envint("RELAY_MAX_URL_BYTES", "8192")
RELAY_MAX_HEADERS = envint("RELAY_MAX_HEADERS", "100")
RELAY_MAX_HEADER_BYTES = envint("RELAY_MAX_HEADER_BYTES", str(64 * 1024))
RELAY_RESPONSE_BODY_CAP = envint("RELAY_RESPONSE_BODY_CAP", str(64 * 1024))
RELAY_TOKEN_OVERLAP = envint("RELAY_TOKEN_OVERLAP", str(24 * 3600))
RELAY_INGRESS_CACHE_TTL = float(os.getenv("RELAY_INGRESS_CACHE_TTL", "2.0"))
# Proxies in front of the ingress whose X-Forwarded-* are believed (CIDRs; relayweb/proxies.py); others' are dropped.
RELAY_TRUSTED_PROXIES = envlist("RELAY_TRUSTED_PROXIES")
for _cidr in RELAY_TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_cidr, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"RELAY_TRUSTED_PROXIES: {_cidr!r} is not an IP address or CIDR "
                                   "(e.g. 10.0.0.0/8,192.168.1.5)") from None
# Slow senders (relayweb/protocol.py): a request's head must arrive within RELAY_CLIENT_TIMEOUT seconds, its
# body within it plus one second per RELAY_CLIENT_MIN_RATE bytes received; else 408.
RELAY_CLIENT_TIMEOUT = float(os.getenv("RELAY_CLIENT_TIMEOUT", "10"))
RELAY_CLIENT_MIN_RATE = envint("RELAY_CLIENT_MIN_RATE", str(8 * 1024))
RELAY_RETRY_BASE = float(os.getenv("RELAY_RETRY_BASE", "2.0"))
RELAY_RETRY_MAX = float(os.getenv("RELAY_RETRY_MAX", "600"))
# Candidate replays (triggers/deliveries/candidates.py): how many one user may start per minute.
RELAY_CANDIDATE_REPLAYS_PER_MINUTE = envint("RELAY_CANDIDATE_REPLAYS_PER_MINUTE", "5")
RELAY_DELIVERY_LEASE_MARGIN = float(os.getenv("RELAY_DELIVERY_LEASE_MARGIN", "30"))
RELAY_DELIVERY_RETENTION_DAYS = envint("RELAY_DELIVERY_RETENTION_DAYS", "14")
RELAY_DELIVERY_MAX_ROWS = envint("RELAY_DELIVERY_MAX_ROWS", "10000")
RELAY_CREDENTIALS_RETENTION_HOURS = envint("RELAY_CREDENTIALS_RETENTION_HOURS", "72")
RELAY_AUDIT_RETENTION_DAYS = envint("RELAY_AUDIT_RETENTION_DAYS", "365")  # 0 keeps the audit log forever
# Keys encrypting verification secrets at rest: the first encrypts, all decrypt (rotation).
RELAY_ENCRYPTION_KEYS = [key.strip() for key in envsecret("RELAY_ENCRYPTION_KEYS").split(",") if key.strip()]

CELERY_BEAT_SCHEDULE.update({
    "deliveries-sweep": {"task": "triggers.tasks.deliveries_sweep", "schedule": 15.0},
    "deliveries-prune": {"task": "triggers.tasks.deliveries_prune", "schedule": 3600.0},
    "audit-prune": {"task": "triggers.tasks.audit_prune", "schedule": 3600.0},
    "logs-prune": {"task": "triggers.tasks.logs_prune", "schedule": 3600.0},
})

# Live status: the watcher process polls Ambassador's admin port for its diag JSON.
RELAY_AMBASSADOR_ADMIN_URL = os.getenv("RELAY_AMBASSADOR_ADMIN_URL", "http://127.0.0.1:8877").rstrip("/")
RELAY_DIAG_INTERVAL = float(os.getenv("RELAY_DIAG_INTERVAL", "10"))
# manage.py check_cluster --probe: the probe Knative Service's image, and how long it may take to be Ready.
RELAY_CHECK_PROBE_IMAGE = os.getenv("RELAY_CHECK_PROBE_IMAGE", "ghcr.io/knative/helloworld-go:latest")
RELAY_CHECK_PROBE_TIMEOUT = float(os.getenv("RELAY_CHECK_PROBE_TIMEOUT", "180"))
# watch_cluster's leader election (a coordination.k8s.io Lease; client-go's algorithm and component-base's
# default durations): only the holder watches, a standby takes over within the lease duration.
RELAY_LEADER_ELECTION = envbool("RELAY_LEADER_ELECTION", "1")
RELAY_LEADER_LEASE_NAME = os.getenv("RELAY_LEADER_LEASE_NAME", "relayweb-watcher")
RELAY_LEADER_LEASE_NAMESPACE = os.getenv("RELAY_LEADER_LEASE_NAMESPACE", "")
RELAY_LEADER_LEASE_DURATION = float(os.getenv("RELAY_LEADER_LEASE_DURATION", "15"))
RELAY_LEADER_RENEW_DEADLINE = float(os.getenv("RELAY_LEADER_RENEW_DEADLINE", "10"))
RELAY_LEADER_RETRY_PERIOD = float(os.getenv("RELAY_LEADER_RETRY_PERIOD", "2"))
# Handler logs (manage.py collect_logs, triggers/cluster/logs.py): every managed pod's user-container log is
# followed and kept in the database; one collector leads (its own Lease) so no line is stored twice.
RELAY_LOG_LEASE_NAME = os.getenv("RELAY_LOG_LEASE_NAME", "relayweb-log-collector")
RELAY_LOG_MAX_STREAMS = envint("RELAY_LOG_MAX_STREAMS", "500")  # pods followed at once; more wait for a slot
RELAY_LOG_QUEUE_LINES = envint("RELAY_LOG_QUEUE_LINES", "20000")  # lines read but not yet stored (memory bound)
RELAY_LOG_RETENTION_DAYS = envint("RELAY_LOG_RETENTION_DAYS", "7")
RELAY_LOG_MAX_LINES_PER_TRIGGER = envint("RELAY_LOG_MAX_LINES_PER_TRIGGER", "200000")
# Ask the kubelet for stdout and stderr apart (two streams per pod; needs the PodLogsQuerySplitStreams gate).
RELAY_LOG_SPLIT_STREAMS = envbool("RELAY_LOG_SPLIT_STREAMS", "0")
