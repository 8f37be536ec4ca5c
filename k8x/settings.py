"""K8X settings: one module, 12-factor, read through django-environ.

Every setting here is documented in the README's configuration table.
Insecure defaults are refused with DEBUG=False by the system checks in
``k8x_core.checks``.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

import django_stubs_ext
import environ

# Generic admin/form classes are subscripted for mypy at runtime too.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A `.env` file in the repository, then the one `make up` generates, may set
# anything below; the real environment always wins over both.
for _env_file in (BASE_DIR / ".env", Path(env.str("K8X_STATE_DIR", default=str(BASE_DIR / ".state"))) / "k8x.env"):
    if _env_file.is_file():
        environ.Env.read_env(str(_env_file), overwrite=False)

INSECURE_SECRET_KEY = "django-insecure-k8x-development-key-do-not-use"  # noqa: S105  (refused by checks)
# A valid Fernet key that is public by being here: fine for tests and
# development, refused by the checks when DEBUG is off.
INSECURE_SECRETS_KEY = "azh4LWRldmVsb3BtZW50LWtleS1ub3Qtc2VjcmV0ISE="

K8X_STATE_DIR = Path(env.str("K8X_STATE_DIR", default=str(BASE_DIR / ".state")))

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default=INSECURE_SECRET_KEY)

# --- K8X domain settings -----------------------------------------------------
KAFKA_BOOTSTRAP_SERVERS = env.str("KAFKA_BOOTSTRAP_SERVERS", default="127.0.0.1:9092")
K8X_EVENTS_TOPIC = env.str("K8X_EVENTS_TOPIC", default="k8x.events")
K8X_DLQ_TOPIC = env.str("K8X_DLQ_TOPIC", default="k8x.events.dlq")
K8X_HUB_GROUP = env.str("K8X_HUB_GROUP", default="k8x-hub")
K8X_HUB_BATCH_SIZE = env.int("K8X_HUB_BATCH_SIZE", default=1000)
K8X_HUB_UNMATCHED_SAMPLE = env.int("K8X_HUB_UNMATCHED_SAMPLE", default=20)
K8X_HUB_UNMATCHED_SAMPLE_SECONDS = env.float("K8X_HUB_UNMATCHED_SAMPLE_SECONDS", default=10.0)
# Limits on a trigger's CEL expression (checked at save and when the hub loads it)
# and the time one evaluation may take in the hub (over it: no match, counted).
K8X_CEL_MAX_LENGTH = env.int("K8X_CEL_MAX_LENGTH", default=2048)
K8X_CEL_MAX_DEPTH = env.int("K8X_CEL_MAX_DEPTH", default=200)
K8X_CEL_MAX_MACRO_NESTING = env.int("K8X_CEL_MAX_MACRO_NESTING", default=2)
K8X_CEL_BUDGET_MS = env.float("K8X_CEL_BUDGET_MS", default=20.0)
# Every process but the web serves /healthz, /readyz and /metrics on this port
# (0: off; each process's --health-port wins, as the Procfile's lines set them).
K8X_HEALTH_PORT = env.int("K8X_HEALTH_PORT", default=0)
# All interfaces: the kubelet probes a pod at its own address.
K8X_HEALTH_ADDR = env.str("K8X_HEALTH_ADDR", default="0.0.0.0")  # noqa: S104
# /healthz fails when the process loop made no step for this long.
K8X_HEALTH_STALE_SECONDS = env.float("K8X_HEALTH_STALE_SECONDS", default=60.0)
# Leader election (Lease per role) for the watcher and the scheduler. Off in
# embedded mode, which runs one of each.
K8X_LEADER_ELECTION = env.bool("K8X_LEADER_ELECTION", default=False)
K8X_LEASE_NAMESPACE = env.str("K8X_LEASE_NAMESPACE", default="k8x-system")
K8X_LEASE_DURATION_SECONDS = env.int("K8X_LEASE_DURATION_SECONDS", default=15)
# The Lease's holderIdentity: the pod's name (downward API), else host and pid.
K8X_POD_NAME = env.str("K8X_POD_NAME", default=f"{socket.gethostname()}-{os.getpid()}")
# Project namespaces are "<K8X_NAMESPACE>-<project slug>".
K8X_NAMESPACE = env.str("K8X_NAMESPACE", default="k8x")
# Empty: use KUBECONFIG if set, else the local cluster's kubeconfig if it
# exists, else the in-cluster service account.
KUBECONFIG = env.str("KUBECONFIG", default="")
# Comma-separated Fernet keys: the first encrypts, all decrypt (rotation).
K8X_SECRETS_KEY = env.list("K8X_SECRETS_KEY", default=[INSECURE_SECRETS_KEY])
K8X_LOG_CAP_BYTES = env.int("K8X_LOG_CAP_BYTES", default=5 * 1024 * 1024)
# A longer log line is stored (and streamed) as several lines marked as continued.
K8X_LOG_LINE_MAX_BYTES = env.int("K8X_LOG_LINE_MAX_BYTES", default=64 * 1024)
K8X_JOB_TTL_SECONDS = env.int("K8X_JOB_TTL_SECONDS", default=3600)
K8X_CREATE_CONTAINER_GRACE_SECONDS = env.float("K8X_CREATE_CONTAINER_GRACE_SECONDS", default=30.0)
# Kubernetes API calls are retried on 429/5xx/connection errors this long.
K8X_KUBE_RETRY_SECONDS = env.float("K8X_KUBE_RETRY_SECONDS", default=60.0)
K8X_KUBE_POOL_SIZE = env.int("K8X_KUBE_POOL_SIZE", default=32)
# A starting/running run whose Job has been missing this long is failed (JobVanished).
K8X_VANISHED_GRACE_SECONDS = env.float("K8X_VANISHED_GRACE_SECONDS", default=10.0)
K8X_MAX_EVENT_BYTES = env.int("K8X_MAX_EVENT_BYTES", default=1024 * 1024)
K8X_MAX_BATCH_EVENTS = env.int("K8X_MAX_BATCH_EVENTS", default=100)
K8X_MAX_BATCH_BYTES = env.int("K8X_MAX_BATCH_BYTES", default=4 * K8X_MAX_EVENT_BYTES)
# Django buffers request bodies up to this; the same limit as the largest body
# an endpoint accepts, so Django, the fast path and the server agree.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(K8X_MAX_BATCH_BYTES, K8X_MAX_EVENT_BYTES)
K8X_MAX_JSON_DEPTH = env.int("K8X_MAX_JSON_DEPTH", default=100)
K8X_RATE_LIMIT_PER_MINUTE = env.int("K8X_RATE_LIMIT_PER_MINUTE", default=6000)
# Requests per minute to the management API (/api/v1) per API key or console user; 0: no limit.
K8X_API_RATE_LIMIT_PER_MINUTE = env.int("K8X_API_RATE_LIMIT_PER_MINUTE", default=1200)
K8X_PRODUCE_TIMEOUT_SECONDS = env.float("K8X_PRODUCE_TIMEOUT_SECONDS", default=5.0)
K8X_PRODUCE_LINGER_MS = env.float("K8X_PRODUCE_LINGER_MS", default=0)
# How long a process trusts an API key it already accepted (0: no cache);
# a revocation takes effect within this time.
K8X_APIKEY_CACHE_SECONDS = env.float("K8X_APIKEY_CACHE_SECONDS", default=5.0)
K8X_BRIDGE_FAST_PATH = env.bool("K8X_BRIDGE_FAST_PATH", default=True)
# Where a running container posts follow-up events. 10.244.0.1 is the local
# cluster's pod bridge, i.e. this machine as seen from a pod.
K8X_EVENTS_URL = env.str("K8X_EVENTS_URL", default="http://10.244.0.1:8000/api/events")
K8X_RUN_TOKEN_TTL_SECONDS = env.int("K8X_RUN_TOKEN_TTL_SECONDS", default=6 * 3600)
K8X_RECONCILE_AFTER_SECONDS = env.int("K8X_RECONCILE_AFTER_SECONDS", default=60)
K8X_GIT_SYNC_INTERVAL_SECONDS = env.int("K8X_GIT_SYNC_INTERVAL_SECONDS", default=0)
K8X_GIT_TIMEOUT_SECONDS = env.int("K8X_GIT_TIMEOUT_SECONDS", default=120)
# Dry-run each deployment.yaml on the API server during a sync.
K8X_GIT_VALIDATE_ON_CLUSTER = env.bool("K8X_GIT_VALIDATE_ON_CLUSTER", default=True)
# Retention (days; 0 keeps forever). Projects may override each (k8x_core.retention).
K8X_RETENTION_RUNS_DAYS = env.int("K8X_RETENTION_RUNS_DAYS", default=30)
K8X_RETENTION_EVENTS_DAYS = env.int("K8X_RETENTION_EVENTS_DAYS", default=30)
K8X_RETENTION_UNMATCHED_EVENTS_DAYS = env.int("K8X_RETENTION_UNMATCHED_EVENTS_DAYS", default=7)
K8X_RETENTION_AUDIT_DAYS = env.int("K8X_RETENTION_AUDIT_DAYS", default=365)
# The scheduler runs a retention pass at most this often (0: never).
K8X_RETENTION_INTERVAL_SECONDS = env.int("K8X_RETENTION_INTERVAL_SECONDS", default=3600)
# Rows deleted per transaction, and batches per scheduler pass (the rest waits for the next pass).
K8X_RETENTION_BATCH_SIZE = env.int("K8X_RETENTION_BATCH_SIZE", default=1000)
K8X_RETENTION_MAX_BATCHES = env.int("K8X_RETENTION_MAX_BATCHES", default=50)
K8X_QUEUE = env.str("K8X_QUEUE", default="k8x")
# Tenant isolation (README "Security model"): containers of a project whose template
# sets no UID run as K8X_PROJECT_UID_BASE + project id.
K8X_PROJECT_UID_BASE = env.int("K8X_PROJECT_UID_BASE", default=100000)
# Each project namespace's ResourceQuota (hard) and LimitRange (per-container
# default limits and requests); a superuser overrides them per project.
K8X_PROJECT_QUOTA = env.json(
    "K8X_PROJECT_QUOTA",
    default={"pods": "50", "requests.cpu": "4", "requests.memory": "8Gi", "limits.cpu": "8", "limits.memory": "16Gi"},
)
K8X_PROJECT_LIMITS = env.json(
    "K8X_PROJECT_LIMITS",
    default={"default": {"cpu": "500m", "memory": "256Mi"}, "defaultRequest": {"cpu": "50m", "memory": "64Mi"}},
)
K8X_MAX_RETRIES = env.int("K8X_MAX_RETRIES", default=10)
# Tolerations a service's template may carry besides its project's own (JSON list of
# Kubernetes tolerations; anything else is refused by the validator). Checked at start (k8x.E009).
K8X_ALLOWED_TOLERATIONS = env.json("K8X_ALLOWED_TOLERATIONS", default=[])
K8X_MAX_TRIGGERS_PER_PROJECT = env.int("K8X_MAX_TRIGGERS_PER_PROJECT", default=500)
K8X_MAX_API_KEYS_PER_PROJECT = env.int("K8X_MAX_API_KEYS_PER_PROJECT", default=50)
# The hub puts up to this many runs into one launch job (worker.jobs.launch_runs).
K8X_LAUNCH_CHUNK = env.int("K8X_LAUNCH_CHUNK", default=25)
# A worker launches a chunk's runs on this many threads (k8x_core.process.pool):
# a launch mostly waits on the API server and PostgreSQL.
K8X_LAUNCH_THREADS = env.int("K8X_LAUNCH_THREADS", default=8)
# Send the run Secret and the Job at the same time (one API round trip per launch
# instead of two). Off by default: on a loaded node the kubelet then sometimes
# meets the pod before it can read the new Secret ("failed to sync secret
# cache") and backs off ~10 s before starting the container.
K8X_LAUNCH_SECRET_WITH_JOB = env.bool("K8X_LAUNCH_SECRET_WITH_JOB", default=False)

# Notifications (k8x_core.notify): the console address put into them, and how a
# delivery is retried (attempt n+1 waits K8X_NOTIFY_BACKOFF_SECONDS * 2**(n-1)).
K8X_CONSOLE_URL = env.str("K8X_CONSOLE_URL", default="http://127.0.0.1:8000")
K8X_NOTIFY_RETRIES = env.int("K8X_NOTIFY_RETRIES", default=5)
K8X_NOTIFY_BACKOFF_SECONDS = env.int("K8X_NOTIFY_BACKOFF_SECONDS", default=10)
K8X_NOTIFY_TIMEOUT_SECONDS = env.float("K8X_NOTIFY_TIMEOUT_SECONDS", default=10.0)
# E-mail notifications go through Django's SMTP backend.
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="k8x@localhost")

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")

ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS",
    default=["127.0.0.1", "localhost", urlsplit(K8X_EVENTS_URL).hostname or "127.0.0.1"],
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# --- Django ------------------------------------------------------------------
INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_rq",
    "k8x_core.apps.K8xCoreConfig",
    "console",
    "worker",
]
# False in the background processes (manage.py sets it for the commands of the Procfile):
# Daphne, Twisted, Autobahn, Channels, the console and the admin's registrations are
# not imported (~30 MB less RSS each). Every app with models stays (the admin's
# LogEntry through SimpleAdminConfig, which does not autodiscover admin modules),
# so the schema and the ORM's cascades are the web process's.
K8X_WEB_APPS = env.bool("K8X_WEB_APPS", default=True)
WEB_ONLY_APPS = ("daphne", "django.contrib.staticfiles", "channels", "console")
if not K8X_WEB_APPS:
    INSTALLED_APPS = [
        "django.contrib.admin.apps.SimpleAdminConfig" if app == "django.contrib.admin" else app
        for app in INSTALLED_APPS
        if app not in WEB_ONLY_APPS
    ]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "k8x.urls"
ASGI_APPLICATION = "k8x.asgi.application"
WSGI_APPLICATION = "k8x.wsgi.application"

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
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{K8X_STATE_DIR / 'k8x.sqlite3'}"),
}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded mode runs several processes on one file: wait for locks.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
    }
}

RQ_QUEUES = {
    K8X_QUEUE: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 600},
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "capacity": 5000, "expiry": 30},
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.str("STATIC_ROOT", default=str(K8X_STATE_DIR / "staticfiles"))
# WhiteNoise warns on every request while STATIC_ROOT is missing, before
# the first collectstatic; the finders serve the files meanwhile.
with contextlib.suppress(OSError):
    Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# --- Security (production values unless DEBUG) ------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Behind TLS in production; the embedded mode is plain HTTP on loopback.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "kafka": {"level": "WARNING"},
        "kubernetes": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
    },
}
