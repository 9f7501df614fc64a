"""Chairside settings: one module, every value from the environment (django-environ).

The defaults are the *embedded* shape: SQLite and Celery over kombu's filesystem
transport under ./var, both partner sandboxes on loopback. Production sets DATABASE_URL,
CELERY_BROKER_URL and the secrets; nothing else changes. Every variable is listed, with
its default, in the README.
"""

import os
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("CHAIRSIDE_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
VAR_DIR.mkdir(parents=True, exist_ok=True)

# --- core ---------------------------------------------------------------------------------

# The default key is for the embedded demo only; `check --deploy` flags it in production.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="django-insecure-chairside-embedded-demo-key-change-me")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "simple_history",
    "financing",
    "carecredit_bridge",
    "dentrix_bridge",
    "notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'chairside.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process and the worker share one file: WAL lets readers proceed during a
    # write, the busy timeout waits instead of failing, and IMMEDIATE takes the write lock
    # up front so two writers never deadlock upgrading a read lock ("database is locked").
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
    }
    # The real-worker tests need the test database in a file the worker process can open;
    # one per test run, so two runs side by side never share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-chairside-{os.getpid()}.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

LOGIN_URL = "admin:login"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.server": {"level": "WARNING"}},
}

# --- REST API -----------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "COERCE_DECIMAL_TO_STRING": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Chairside API",
    "DESCRIPTION": "Start financed cases and follow them from CareCredit decision to Dentrix arrangement.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- PHI at rest --------------------------------------------------------------------------

# Fernet keys, comma separated; the first encrypts, all decrypt (rotation). The default is a
# fixed key for the embedded demo only.
FIELD_ENCRYPTION_KEYS = env.list(
    "FIELD_ENCRYPTION_KEY", default=["Y2hhaXJzaWRlLWVtYmVkZGVkLWRlbW8ta2V5LTAwMDE="]
)

# --- Chairside ----------------------------------------------------------------------------

# The address partners use to reach this deployment (webhook callback URLs, links in emails).
CHAIRSIDE_PORT = env.int("CHAIRSIDE_PORT", default=8000)
CHAIRSIDE_PUBLIC_URL = env.str("CHAIRSIDE_PUBLIC_URL", default=f"http://127.0.0.1:{CHAIRSIDE_PORT}").rstrip("/")
# Webhook signing secrets accepted from CareCredit; two at once during a rotation.
CARECREDIT_WEBHOOK_SECRETS = env.list("CARECREDIT_WEBHOOK_SECRETS", default=["whsec_sandbox"])
CARECREDIT_WEBHOOK_TOLERANCE_SECONDS = env.int("CARECREDIT_WEBHOOK_TOLERANCE_SECONDS", default=300)

# Partner HTTP timeouts: they must stay below the task soft time limit (see below).
PARTNER_CONNECT_TIMEOUT = env.float("PARTNER_CONNECT_TIMEOUT", default=3.05)
PARTNER_READ_TIMEOUT = env.float("PARTNER_READ_TIMEOUT", default=10.0)

CASE_EXPIRY_DAYS = env.int("CASE_EXPIRY_DAYS", default=30)
DECISION_POLL_SECONDS = env.int("DECISION_POLL_SECONDS", default=60)
SWEEP_SECONDS = env.int("SWEEP_SECONDS", default=60)
# A step claims its case for this long; a case still claimed after it is re-driven.
CASE_LEASE_SECONDS = env.int("CASE_LEASE_SECONDS", default=120)
STEP_MAX_ATTEMPTS = env.int("STEP_MAX_ATTEMPTS", default=8)
RETRY_BASE_SECONDS = env.float("RETRY_BASE_SECONDS", default=2.0)
RETRY_MAX_SECONDS = env.float("RETRY_MAX_SECONDS", default=300.0)

# Demo wiring used by `make run`, seed_demo and simulate.
CARECREDIT_SANDBOX_PORT = env.int("CARECREDIT_SANDBOX_PORT", default=8101)
DENTRIX_SANDBOX_PORT = env.int("DENTRIX_SANDBOX_PORT", default=8102)
CARECREDIT_SANDBOX_URL = env.str("CARECREDIT_SANDBOX_URL", default=f"http://127.0.0.1:{CARECREDIT_SANDBOX_PORT}")
DENTRIX_SANDBOX_URL = env.str("DENTRIX_SANDBOX_URL", default=f"http://127.0.0.1:{DENTRIX_SANDBOX_PORT}")

# --- notifications ------------------------------------------------------------------------

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default=str(VAR_DIR / "outbox" / "email"))
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Chairside <chairside@localhost>")
SMS_BACKEND = env.str("SMS_BACKEND", default="notifications.sms.FileBackend")
SMS_FILE_PATH = env.str("SMS_FILE_PATH", default=str(VAR_DIR / "outbox" / "sms"))

# --- Celery -------------------------------------------------------------------------------

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
# Every step is idempotent (guarded by the case state and a lease), so late acks are safe;
# a worker killed mid-task gets its message back instead of losing the case.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "financing.send_application": {"queue": "lender"},
    "financing.refresh_decision": {"queue": "lender"},
    "financing.write_arrangement": {"queue": "pms"},
    "financing.post_ledger_note": {"queue": "pms"},
    "notifications.send": {"queue": "notify"},
}
CELERY_WORKER_QUEUES = "default,lender,pms,notify"
# Time bounds nest: HTTP timeouts < soft limit < hard limit < lease < visibility timeout.
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=60)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=90)
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS.update(
        data_folder_in=str(_broker_dir / "queue"),
        data_folder_out=str(_broker_dir / "queue"),
        processed_folder=str(_broker_dir / "processed"),
        control_folder=str(_broker_dir / "control"),
        store_processed=False,
        # The transport polls its folder; kombu's default of once a second caps the
        # embedded system at about one task per second per queue.
        polling_interval=0.05,
    )
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_MAX_TASKS_PER_CHILD = 500
CELERY_BEAT_SCHEDULE = {
    "poll-decisions": {"task": "financing.poll_decisions", "schedule": float(DECISION_POLL_SECONDS)},
    "redrive-stuck-cases": {"task": "financing.redrive_stuck_cases", "schedule": float(SWEEP_SECONDS)},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
