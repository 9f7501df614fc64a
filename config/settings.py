"""Chairside settings: one module, every value from the environment (django-environ).

The defaults are the *embedded* shape: SQLite and Celery over kombu's filesystem
transport under ./var, both partner sandboxes on loopback. Production sets DATABASE_URL,
CELERY_BROKER_URL and the secrets; nothing else changes. Every variable is listed, with
its default, in the README.
"""

import os
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

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

# HTTPS only: DJANGO_SECURE=true in production (behind TLS) turns on the HTTPS redirect,
# HTTPS-only cookies and HSTS. `make run` serves plain http on 127.0.0.1 and leaves it off.
SECURE = env.bool("DJANGO_SECURE", default=False)
SECURE_SSL_REDIRECT = SECURE
SESSION_COOKIE_SECURE = SECURE
CSRF_COOKIE_SECURE = SECURE
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000) if SECURE else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE
SECURE_HSTS_PRELOAD = SECURE
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (and drops a client's own):
# without this the redirect above would loop. Never on without such a proxy: any client
# could then claim to be on HTTPS.
if env.bool("DJANGO_BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Automatic logoff (HIPAA §164.312(a)(2)(iii)): a session ends after this long without a
# request; every request starts the count again. Closing the browser ends it too.
SESSION_COOKIE_AGE = env.int("SESSION_IDLE_MINUTES", default=30) * 60
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

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
    # Swagger UI's and Redoc's files, served from our static files (see SPECTACULAR_SETTINGS).
    "drf_spectacular_sidecar",
    "django_filters",
    "simple_history",
    "django_otp",
    "django_otp.plugins.otp_totp",
    # One-time backup codes for the second factor (accounts.second_factor).
    "django_otp.plugins.otp_static",
    "axes",
    "accounts",
    "financing",
    "carecredit_bridge",
    "dentrix_bridge",
    "opendental_bridge",
    "notifications",
    "sandboxes",
]

# Which delivery records a staff member may see in the notifications admin: a function of
# the user returning the references (case references) in their scope. Notifications know
# a reference, not what it refers to; the domain that owns the references says.
NOTIFICATIONS_VISIBLE_REFERENCES = "financing.scoping.case_references_for"

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # A NUL in the query string is a 400 before any view can send it to the database.
    "core.inbound.reject_nul_in_query",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout response.
    "axes.middleware.AxesMiddleware",
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
else:
    # Keep connections open across requests and tasks: opening one costs PostgreSQL a
    # backend process (about 10 ms) and was the largest single cost per task before this.
    # Every web thread and worker pool process holds one, and each pool process one more for
    # its lease heartbeat (core/heartbeat.py): size max_connections for that.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=300)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Parameters bound by the server, not spliced into the SQL text by the driver: psycopg
    # then prepares a statement it has run five times, so the steps' repeated queries skip
    # PostgreSQL's parse and plan, and no Python code quotes values. (Behind PgBouncer in
    # transaction mode, set DB_SERVER_SIDE_BINDING=false: prepared statements are per session.)
    DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = env.bool("DB_SERVER_SIDE_BINDING", default=True)
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
# Dates and times are shown one way everywhere (financing/display.py); Django's own
# rendering (read-only admin fields, history pages) reads the same formats from here.
FORMAT_MODULE_PATH = ["config.formats"]

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

LOGIN_URL = "admin:login"

# --- sign-in hardening --------------------------------------------------------------------

# django-axes counts failed logins and locks the (username, address) pair out for a while;
# its backend must come first so a locked-out pair is refused before the password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("LOGIN_LOCKOUT_MINUTES", default=15.0) / 60  # hours
# Username and address together: one attacker cannot lock a colleague out from elsewhere,
# and one address cannot try passwords for a user forever.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The lockout page is a console page (its header, the wait in words): config/signin.py.
AXES_LOCKOUT_CALLABLE = "config.signin.locked_out"
# Behind a proxy every request seems to come from the proxy, and one lockout would lock out
# everybody: say how many proxies append to X-Forwarded-For (config/signin.py reads it).
LOGIN_PROXY_COUNT = env.int("LOGIN_PROXY_COUNT", default=0)
AXES_CLIENT_IP_CALLABLE = "config.signin.client_ip"
# Every staff account needs a second factor (the admin is django-otp's OTPAdminSite, see
# config/urls.py). The issuer is what authenticator apps show next to the code.
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="Chairside")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.server": {"level": "WARNING"}},
}

# --- REST API -----------------------------------------------------------------------------

# Django's default, stated because the API and the webhooks answer 400 past it: every body
# Chairside is sent is under a kilobyte (core.inbound reads JSON no further than this).
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # JSON through core.inbound: bounded size, depth and numbers, UTF-8 only, a 400 otherwise.
    "DEFAULT_PARSER_CLASSES": [
        "core.inbound.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # Every 4xx in one shape, {"detail": "…", "errors": {"field": ["…"]}} (core/api_errors.py);
    # a body over DATA_UPLOAD_MAX_MEMORY_SIZE is a JSON 400 too.
    "EXCEPTION_HANDLER": "core.api_errors.exception_handler",
    # ?limit= at most core.inbound.MAX_PAGE_SIZE (200).
    "DEFAULT_PAGINATION_CLASS": "core.inbound.Pagination",
    "PAGE_SIZE": 50,
    "COERCE_DECIMAL_TO_STRING": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Chairside API",
    "DESCRIPTION": "Start financed cases and follow them from CareCredit decision to Dentrix arrangement.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # /api/docs/ from our own static files, not a CDN: it works offline and behind a firewall.
    "SWAGGER_UI_DIST": "SIDECAR",
    # No badge from the public validator either: nothing of /api/doc/ leaves the machine.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- PHI at rest --------------------------------------------------------------------------

# Fernet keys, comma separated; the first encrypts, all decrypt (rotation: see
# `manage.py rotate_field_key`). The default is a fixed key for the embedded demo only;
# `check --deploy` refuses it.
FIELD_ENCRYPTION_DEMO_KEY = "Y2hhaXJzaWRlLWVtYmVkZGVkLWRlbW8ta2V5LTAwMDE="
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEY", default=[FIELD_ENCRYPTION_DEMO_KEY])

# Keys of the search tokens (core/blind_index.py: a case found by surname without decrypting
# every row), comma separated; the first makes new tokens, all are searched. Never drop a key
# that made tokens still in use: a token cannot be remade without the surname, which only the
# PMS holds. The default is for the embedded demo only; `check --deploy` refuses it.
SEARCH_TOKEN_DEMO_KEY = "chairside-embedded-demo-search-token-key"
SEARCH_TOKEN_KEYS = env.list("SEARCH_TOKEN_KEY", default=[SEARCH_TOKEN_DEMO_KEY])

# --- Chairside ----------------------------------------------------------------------------

# The address partners use to reach this deployment (webhook callback URLs, links in emails).
CHAIRSIDE_PORT = env.int("CHAIRSIDE_PORT", default=8000)
CHAIRSIDE_PUBLIC_URL = env.str("CHAIRSIDE_PUBLIC_URL", default=f"http://127.0.0.1:{CHAIRSIDE_PORT}").rstrip("/")
# Where a running `make run` serves, written by it (and removed when it stops), so a second
# terminal (`manage.py simulate`, the README's curl examples) finds it whatever
# CHAIRSIDE_PORT `make run` was started with.
WEB_URL_FILE = VAR_DIR / "web.url"
# Webhook signing secrets accepted from CareCredit; two at once during a rotation.
CARECREDIT_WEBHOOK_SECRETS = env.list("CARECREDIT_WEBHOOK_SECRETS", default=["whsec_sandbox"])
CARECREDIT_WEBHOOK_TOLERANCE_SECONDS = env.int("CARECREDIT_WEBHOOK_TOLERANCE_SECONDS", default=300)
# Chairside's Open Dental developer key (the first half of `Authorization: ODFHIR
# <DeveloperKey>/<CustomerKey>`; each location holds its office's customer key). The default
# is the sandbox's: a real one comes from Open Dental's Developer Portal.
OPENDENTAL_DEVELOPER_KEY = env.str("OPENDENTAL_DEVELOPER_KEY", default="sandbox-developer")

# Partner HTTP timeouts: they must stay below the task soft time limit (see below).
PARTNER_CONNECT_TIMEOUT = env.float("PARTNER_CONNECT_TIMEOUT", default=3.05)
PARTNER_READ_TIMEOUT = env.float("PARTNER_READ_TIMEOUT", default=10.0)

CASE_EXPIRY_DAYS = env.int("CASE_EXPIRY_DAYS", default=30)
DECISION_POLL_SECONDS = env.int("DECISION_POLL_SECONDS", default=60)
# Each batch poll of a merchant re-reads this much of the lender's recent changes, so a
# decision that landed while its case was still recording the application id (a step can
# run up to the task time limit) is seen again once the case knows it.
DECISION_POLL_OVERLAP_SECONDS = env.int("DECISION_POLL_OVERLAP_SECONDS", default=300)
SWEEP_SECONDS = env.int("SWEEP_SECONDS", default=60)
# Cases approved before their treatment, at a PMS that writes a plan only over posted
# production (Dentrix Ascend, Eaglesoft), wait in awaiting_production: beat asks the PMS
# this often whether the procedures are posted (one treatment-plan read per waiting case).
PRODUCTION_CHECK_SECONDS = env.int("PRODUCTION_CHECK_SECONDS", default=300)
# A case waiting that long for its treatment to be posted becomes the billing team's work
# ("Needs you today"): the patient may not have come back, or the front desk never posted.
PRODUCTION_WAIT_ALERT_DAYS = env.int("PRODUCTION_WAIT_ALERT_DAYS", default=30)
# The nightly pre-screen (financing/services/prescreen.py): beat looks this often for the
# locations whose pre-screen hour has come (each location's hour, on its own clock, is in
# its settings), and for runs whose message was lost.
PRESCREEN_CHECK_SECONDS = env.int("PRESCREEN_CHECK_SECONDS", default=300)
# Reconciliation (financing/services/reconciliation.py): from this hour of the lender's clock
# (America/New_York, 0–23) each merchant's settlement report of the day before is matched
# against the ledger; beat looks this often for a day not reconciled yet, or whose run
# failed (the lender or the PMS could not be read), and runs it (again).
RECONCILIATION_HOUR = env.int("RECONCILIATION_HOUR", default=6)
RECONCILIATION_CHECK_SECONDS = env.int("RECONCILIATION_CHECK_SECONDS", default=900)
# A case captured for a patient remembers their pre-screen result if it is at most this
# old (a pre-qualification counts only until its own expiry, if that comes first).
PRESCREEN_RESULT_DAYS = env.int("PRESCREEN_RESULT_DAYS", default=30)
# A claim (a case's step, a notification's hand-off) lasts this long unless renewed. The
# process holding it renews it every LEASE_HEARTBEAT_SECONDS while it works (however long,
# up to the task's hard time limit), so only a gone holder's lease runs out; each beat of
# every worker process also hands back what gone holders held (core/heartbeat.py). After a
# crash, work moves again at once when the worker restarts on the same host, and within
# CASE_LEASE_SECONDS + LEASE_HEARTBEAT_SECONDS (25 s) by any live worker elsewhere.
CASE_LEASE_SECONDS = env.int("CASE_LEASE_SECONDS", default=20)
LEASE_HEARTBEAT_SECONDS = env.float("LEASE_HEARTBEAT_SECONDS", default=5.0)
if CASE_LEASE_SECONDS < 3 * LEASE_HEARTBEAT_SECONDS:
    # Two missed beats (a database hiccup) must not cost a live step its case.
    raise ImproperlyConfigured("CASE_LEASE_SECONDS must be at least 3 × LEASE_HEARTBEAT_SECONDS.")
# The sweepers (cases and notifications) re-drive nothing into a queue that still holds
# messages: what they would re-drive is most likely waiting there. Work older than this is
# re-driven anyway, so a queue that never empties still gives back a lost message.
SWEEP_BUSY_QUEUE_SECONDS = env.int("SWEEP_BUSY_QUEUE_SECONDS", default=600)
# A failing step is retried with backoff and jitter: after failed attempt n it waits
# between half and all of min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2**(n-1)), and the
# last attempt hands the case to a human (needs_attention). With these defaults the 11
# waits of 12 attempts add up to 705-1,410 s (11 3/4 to 23 1/2 minutes): longer than a
# 10-minute partner outage whatever the jitter draws (10 attempts: 405-810 s, which ends
# before such an outage does for about half the cases). The cap also bounds the claims
# that died without finishing (financing.services._claim).
STEP_MAX_ATTEMPTS = env.int("STEP_MAX_ATTEMPTS", default=12)
RETRY_BASE_SECONDS = env.float("RETRY_BASE_SECONDS", default=2.0)
RETRY_MAX_SECONDS = env.float("RETRY_MAX_SECONDS", default=300.0)
# After a write whose outcome is unknown (read timeout, dropped connection, 5xx), the next
# attempt waits at least this long before the lookup that decides whether to write again:
# a partner may still commit a request we stopped waiting for.
AMBIGUOUS_WRITE_SETTLE_SECONDS = env.float("AMBIGUOUS_WRITE_SETTLE_SECONDS", default=30.0)

# Test-only: named fault points (core.faults.fault_point) that break a step on
# purpose, so the reliability tests can arm them in a real worker process ("name" raises,
# "name:exit" kills the process). Honoured only together with CHAIRSIDE_TESTING=1, so a
# stray variable in production arms nothing.
CHAIRSIDE_TESTING = env.bool("CHAIRSIDE_TESTING", default=False)
CHAIRSIDE_FAULT_POINTS = env.list("CHAIRSIDE_FAULT_POINTS", default=[]) if CHAIRSIDE_TESTING else []

# Demo wiring used by `make run`, seed_demo and simulate.
CARECREDIT_SANDBOX_PORT = env.int("CARECREDIT_SANDBOX_PORT", default=8101)
DENTRIX_SANDBOX_PORT = env.int("DENTRIX_SANDBOX_PORT", default=8102)
CARECREDIT_SANDBOX_URL = env.str("CARECREDIT_SANDBOX_URL", default=f"http://127.0.0.1:{CARECREDIT_SANDBOX_PORT}")
DENTRIX_SANDBOX_URL = env.str("DENTRIX_SANDBOX_URL", default=f"http://127.0.0.1:{DENTRIX_SANDBOX_PORT}")
# The other connector products: the same sandbox package, one process per product
# (python -m sandboxes.dentrix --product ...), each its own practice database.
DENTRIX_ENTERPRISE_SANDBOX_PORT = env.int("DENTRIX_ENTERPRISE_SANDBOX_PORT", default=8105)
DENTRIX_ASCEND_SANDBOX_PORT = env.int("DENTRIX_ASCEND_SANDBOX_PORT", default=8106)
EAGLESOFT_SANDBOX_PORT = env.int("EAGLESOFT_SANDBOX_PORT", default=8107)
DENTRIX_ENTERPRISE_SANDBOX_URL = env.str(
    "DENTRIX_ENTERPRISE_SANDBOX_URL", default=f"http://127.0.0.1:{DENTRIX_ENTERPRISE_SANDBOX_PORT}"
)
DENTRIX_ASCEND_SANDBOX_URL = env.str("DENTRIX_ASCEND_SANDBOX_URL", default=f"http://127.0.0.1:{DENTRIX_ASCEND_SANDBOX_PORT}")
EAGLESOFT_SANDBOX_URL = env.str("EAGLESOFT_SANDBOX_URL", default=f"http://127.0.0.1:{EAGLESOFT_SANDBOX_PORT}")
OPENDENTAL_SANDBOX_PORT = env.int("OPENDENTAL_SANDBOX_PORT", default=8104)
# Where the sandbox listens; its API is under /api/v1, as Open Dental's (a location's base URL).
OPENDENTAL_SANDBOX_URL = env.str("OPENDENTAL_SANDBOX_URL", default=f"http://127.0.0.1:{OPENDENTAL_SANDBOX_PORT}")

# --- notifications ------------------------------------------------------------------------

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default=str(VAR_DIR / "outbox" / "email"))
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)  # STARTTLS, usually port 587
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)  # implicit TLS, usually port 465
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Chairside <chairside@localhost>")
SMS_BACKEND = env.str("SMS_BACKEND", default="notifications.sms.FileBackend")
SMS_FILE_PATH = env.str("SMS_FILE_PATH", default=str(VAR_DIR / "outbox" / "sms"))
# SMS_BACKEND=twilio_bridge.client.TwilioBackend. TWILIO_FROM is an E.164 number or a
# Messaging Service SID (MG…). TWILIO_API_URL moves only for the tests' local server.
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", default="")
TWILIO_FROM = env.str("TWILIO_FROM", default="")
TWILIO_API_URL = env.str("TWILIO_API_URL", default="https://api.twilio.com")
# Unset: CHAIRSIDE_PUBLIC_URL + /api/v1/webhooks/twilio/status/; empty: no delivery reports.
TWILIO_STATUS_CALLBACK_URL = env.str("TWILIO_STATUS_CALLBACK_URL", default=None)
# The billing digest goes out once a day at this UTC time.
DIGEST_HOUR_UTC = env.int("DIGEST_HOUR_UTC", default=7)
DIGEST_MINUTE_UTC = env.int("DIGEST_MINUTE_UTC", default=0)

# --- Celery -------------------------------------------------------------------------------

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")

# Partner request rates are limited per connection (the rates are per location, in the
# admin); the slots live in this Redis so every process shares them. Empty: in memory, per
# process (the embedded default). See financing/ratelimit.py.
PARTNER_RATE_LIMITS = env.bool("PARTNER_RATE_LIMITS", default=True)
PARTNER_RATE_LIMIT_URL = env.str(
    "PARTNER_RATE_LIMIT_URL",
    default=CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else "",
)
# A call waits at most this long for its slot; beyond it the step is re-scheduled instead.
PARTNER_RATE_LIMIT_MAX_WAIT = env.float("PARTNER_RATE_LIMIT_MAX_WAIT", default=2.0)
# Every step is idempotent (guarded by the case state and a lease), so late acks are safe;
# a worker killed mid-task gets its message back instead of losing the case.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# When a pool process dies mid-task, its message keeps a prefetch slot until Celery gives
# up waiting for the dead process's answer (10 s by default) and hands the message back: a
# worker with one pool process takes nothing else meanwhile, not even the re-driven step of
# the case that process held. Every step is idempotent, so a job given up on too early is
# at worst run again and turned away by its claim.
CELERY_WORKER_LOST_WAIT = 2.0
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "financing.send_application": {"queue": "lender"},
    "financing.refresh_decision": {"queue": "lender"},
    "financing.poll_lender_decisions": {"queue": "lender"},
    "financing.write_arrangement": {"queue": "pms"},
    "financing.post_ledger_note": {"queue": "pms"},
    "financing.charge_purchase": {"queue": "lender"},
    "financing.post_payment": {"queue": "pms"},
    "financing.check_posted_production": {"queue": "pms"},
    "financing.refund": {"queue": "lender"},  # a staff refund: the lender first, then its posting
    "notifications.send": {"queue": "notify"},
}
CELERY_WORKER_QUEUES = "default,lender,pms,notify"
# Time bounds nest: HTTP timeouts < soft limit < hard limit < visibility timeout. (A lease
# needs no place in the chain: it is renewed while its task runs, see CASE_LEASE_SECONDS.)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=60)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=90)
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
# The pre-screen's pieces (financing.prescreen_run) read a day's schedule in one port call, as
# many requests as the PMS needs at its connection's pace (Open Dental: about three a visit, at
# one a second): their own, longer bound, still below the visibility timeout. A batch's piece
# is sized to the default limit (services.prescreen.batch_size).
PRESCREEN_TASK_SOFT_TIME_LIMIT = env.int("PRESCREEN_TASK_SOFT_TIME_LIMIT", default=900)
PRESCREEN_TASK_TIME_LIMIT = PRESCREEN_TASK_SOFT_TIME_LIMIT + 30
if not PRESCREEN_TASK_TIME_LIMIT < CELERY_VISIBILITY_TIMEOUT:
    raise ImproperlyConfigured("PRESCREEN_TASK_SOFT_TIME_LIMIT + 30 must stay below CELERY_VISIBILITY_TIMEOUT.")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's filesystem transport, writing each message atomically (see config/broker.py).
    CELERY_BROKER_TRANSPORT = "config.broker:Transport"
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS.update(
        data_folder_in=str(_broker_dir / "queue"),
        data_folder_out=str(_broker_dir / "queue"),
        processed_folder=str(_broker_dir / "processed"),
        control_folder=str(_broker_dir / "control"),
        # The PHI test reads back every message the worker consumed (test-only).
        store_processed=CHAIRSIDE_TESTING and env.bool("CHAIRSIDE_BROKER_KEEP_PROCESSED", default=False),
        # The transport polls its folder; kombu's default of once a second caps the
        # embedded system at about one task per second per queue.
        polling_interval=0.05,
    )
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_MAX_TASKS_PER_CHILD = 500
# Celery's Django fixup closes every database connection before and after every task unless
# this is set (then only every N/2 tasks). config/celery.py closes the broken or expired ones
# instead, as Django does around a web request, so a worker keeps its connection.
CELERY_DB_REUSE_MAX = 1000
CELERY_BEAT_SCHEDULE = {
    "poll-decisions": {"task": "financing.poll_decisions", "schedule": float(DECISION_POLL_SECONDS)},
    "redrive-stuck-cases": {"task": "financing.redrive_stuck_cases", "schedule": float(SWEEP_SECONDS)},
    "check-production": {"task": "financing.check_production", "schedule": float(PRODUCTION_CHECK_SECONDS)},
    # Hourly: a location's today turns at its own midnight.
    "expire-unused-approvals": {"task": "financing.expire_unused_approvals", "schedule": 3600.0},
    "redrive-notifications": {"task": "notifications.redrive", "schedule": float(SWEEP_SECONDS)},
    "prescreen-locations": {"task": "financing.prescreen_locations", "schedule": float(PRESCREEN_CHECK_SECONDS)},
    "reconcile-settlements": {"task": "financing.reconcile_settlements", "schedule": float(RECONCILIATION_CHECK_SECONDS)},
    "daily-digest": {"task": "financing.daily_digest", "schedule": crontab(hour=DIGEST_HOUR_UTC, minute=DIGEST_MINUTE_UTC)},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
