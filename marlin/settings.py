"""Marlin's settings: one flat module, read from MARLIN_* environment variables.

Nothing here creates files at import time except the secret key, which must exist before Django
starts and is generated once into the data directory (never a hard-coded default).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def envlist(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [part.strip() for part in value.split(",") if part.strip()]


def envsecret(name: str) -> str | None:
    """The value of NAME, or the contents of the file named by NAME_FILE."""
    value = os.environ.get(name)
    if value:
        return value
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return None


def envsecrets(name: str) -> list[str]:
    """Several secrets: NAME separated by commas, or the lines of the file named by NAME_FILE."""
    value = os.environ.get(name)
    if value:
        return [part.strip() for part in value.split(",") if part.strip()]
    path = os.environ.get(f"{name}_FILE")
    if path:
        return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    return []


DATA_DIR = Path(os.environ.get("MARLIN_DATA_DIR") or BASE_DIR / "var").resolve()
# Folders inside DATA_DIR are derived at run time by marlin.paths, so tests can move DATA_DIR.


def _secret_key() -> str:
    configured = envsecret("MARLIN_SECRET_KEY")
    if configured:
        return configured
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = DATA_DIR / "secret_key"
    try:
        # O_EXCL: two processes starting at once agree on one key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = envbool("MARLIN_DEBUG", False)
ALLOWED_HOSTS = envlist("MARLIN_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = envlist("MARLIN_CSRF_TRUSTED_ORIGINS", [])
SITE_NAME = os.environ.get("MARLIN_SITE_NAME", "Marlin")

INSTALLED_APPS = [
    "marlin.adminsite.MarlinAdminConfig",  # django.contrib.admin on the admin-role site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "ninja",  # serves the API docs' Swagger UI from local static files (no CDN)
    "django_tasks",
    "django_tasks_db",
    "marlin.audit",
    "marlin.accounts",
    "marlin.catalog",
    "marlin.tasks",
    "marlin.agents",
    "marlin.checks",
    "marlin.review",
    "marlin.analytics",
    "marlin.exports",
    "marlin.monitoring",
    "marlin",
]

MIDDLEWARE = [
    # Outermost of all: the request id, the latency metric and the request's log line see every
    # answer as the client gets it (docs/deploy.md, "Health and metrics").
    "marlin.monitoring.middleware.observe_requests",
    # Outermost: turns any error answer under /api/ that is not JSON into JSON (404, 405, 500).
    "marlin.api.middleware.json_api_errors",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "marlin.urls"
WSGI_APPLICATION = "marlin.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "marlin" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "marlin.accounts.context_processors.roles",
            ],
            "builtins": ["marlin.templatetags.marlin_tags"],
        },
    }
]

# MARLIN_DATABASE_URL_FILE too: the URL carries the database password (compose.yaml's secret).
DATABASE_URL = envsecret("MARLIN_DATABASE_URL") or f"sqlite:///{DATA_DIR / 'marlin.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
# Connections kept by each process on PostgreSQL; 0 turns the pool off (then each thread keeps
# its own connection for CONN_MAX_AGE). `marlin serve` sets it to its thread count.
DB_POOL_SIZE = envint("MARLIN_DB_POOL_SIZE", 8)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web app read while the worker writes; IMMEDIATE avoids lock upgrades
    # failing with "database is locked" under concurrent writers.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=15000;"
        ),
        "transaction_mode": "IMMEDIATE",
        "timeout": 15,
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Django's own default for a SQLite test database, said out loud: with the engine renamed
    # below, pytest-django's xdist naming no longer recognises SQLite and would otherwise name
    # each worker's test database after the data file ("test_/path/marlin.sqlite3_gw0").
    DATABASES["default"].setdefault("TEST", {}).setdefault("NAME", ":memory:")
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DB_POOL_SIZE > 0:
    # A pool per process (psycopg_pool through Django): a request thread borrows a connection
    # and gives it back when the request ends, so `marlin serve` holds at most workers x
    # MARLIN_DB_POOL_SIZE connections however many clients keep theirs open (docs/scaling.md).
    # Django refuses persistent connections with a pool: the pool keeps them instead.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DB_POOL_SIZE,
        # A thread waits this long for a free connection before its request fails (503-like
        # 500 in the log); generous, as the pool is sized to the server's threads.
        "timeout": envint("MARLIN_DB_POOL_TIMEOUT", 30),
        "max_idle": 300,
    }
# Django's own backends, plus sealing a transaction's audit events right before it commits
# (marlin.audit.backends; docs/decisions/0016).
DATABASES["default"]["ENGINE"] = {
    "django.db.backends.sqlite3": "marlin.audit.backends.sqlite3",
    "django.db.backends.postgresql": "marlin.audit.backends.postgresql",
}.get(DATABASES["default"]["ENGINE"], DATABASES["default"]["ENGINE"])

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Single sign-on with OpenID Connect (mozilla-django-oidc; docs/deploy.md "Single sign-on"). On
# when an issuer and a client id are set. Endpoints come from the issuer's discovery document
# (fetched on first use, not here) unless MARLIN_OIDC_*_ENDPOINT names them.
OIDC_ISSUER = os.environ.get("MARLIN_OIDC_ISSUER", "")
OIDC_RP_CLIENT_ID = os.environ.get("MARLIN_OIDC_CLIENT_ID", "")
OIDC_ENABLED = bool(OIDC_ISSUER and OIDC_RP_CLIENT_ID)
OIDC_RP_CLIENT_SECRET = envsecret("MARLIN_OIDC_CLIENT_SECRET") or ""
OIDC_PROVIDER_NAME = os.environ.get("MARLIN_OIDC_PROVIDER_NAME", "single sign-on")
OIDC_OP_AUTHORIZATION_ENDPOINT = os.environ.get("MARLIN_OIDC_AUTHORIZATION_ENDPOINT", "")
OIDC_OP_TOKEN_ENDPOINT = os.environ.get("MARLIN_OIDC_TOKEN_ENDPOINT", "")
OIDC_OP_USER_ENDPOINT = os.environ.get("MARLIN_OIDC_USERINFO_ENDPOINT", "")
OIDC_OP_JWKS_ENDPOINT = os.environ.get("MARLIN_OIDC_JWKS_URI", "")
OIDC_OP_END_SESSION_ENDPOINT = os.environ.get("MARLIN_OIDC_END_SESSION_ENDPOINT", "")
OIDC_RP_SCOPES = " ".join(envlist("MARLIN_OIDC_SCOPES", ["openid", "email", "profile"]))
OIDC_RP_SIGN_ALGO = os.environ.get("MARLIN_OIDC_SIGN_ALGO", "RS256")
OIDC_USERNAME_CLAIM = os.environ.get("MARLIN_OIDC_USERNAME_CLAIM", "preferred_username")
OIDC_GROUPS_CLAIM = os.environ.get("MARLIN_OIDC_GROUPS_CLAIM", "groups")
# "group=role,group=role": the roles named here follow the groups at every login; other roles
# stay as an admin set them (marlin/accounts/sso.py).
OIDC_ROLE_MAP = envlist("MARLIN_OIDC_ROLE_MAP", [])
# Link a first SSO login to an existing local account of the same username (for moving a
# running instance to SSO); off, such a login is refused.
OIDC_LINK_EXISTING = envbool("MARLIN_OIDC_LINK_EXISTING", False)
# Only SSO: the login page shows the provider's button and refuses passwords.
OIDC_ONLY = envbool("MARLIN_OIDC_ONLY", False)
OIDC_USE_PKCE = True
OIDC_AUTHENTICATION_CALLBACK_URL = "sso_callback"  # the URL name the provider sends back to
OIDC_STORE_ID_TOKEN = True  # sent back as id_token_hint when logging out at the provider
OIDC_TIMEOUT = envint("MARLIN_OIDC_TIMEOUT", 10)
AUTHENTICATION_BACKENDS = [
    *(["marlin.accounts.sso.SsoBackend"] if OIDC_ENABLED else []),
    *([] if OIDC_ONLY else ["django.contrib.auth.backends.ModelBackend"]),
]

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
STATIC_ROOT = os.environ.get("MARLIN_STATIC_ROOT") or None  # for collectstatic behind a proxy
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = envbool("MARLIN_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Jobs: django-tasks with the database backend by default; RQ on Redis to scale out.
TASKS_BACKEND = os.environ.get("MARLIN_TASKS_BACKEND", "database")
if TASKS_BACKEND == "rq":
    TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
    RQ_QUEUES = {"default": {"URL": os.environ.get("MARLIN_REDIS_URL", "redis://127.0.0.1:6379/0")}}
    INSTALLED_APPS.append("django_rq")
elif TASKS_BACKEND == "immediate":
    TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
else:
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}

# Catalog and sandbox policy.
ALLOW_LOCAL_REPOSITORIES = envbool("MARLIN_ALLOW_LOCAL_REPOSITORIES", False)
SANDBOX_BACKEND = os.environ.get("MARLIN_SANDBOX_BACKEND", "bwrap")
# The command-line agents (Claude Code, Codex CLI, aider, mini-swe-agent) that scripts/agent-clis.sh
# installs; mounted read-only at /opt/agent-tools for command agents when it exists. Outside the
# data directory by default so that a fresh clone (CI) reuses the machine's copy.
AGENT_TOOLS_DIR = Path(
    os.environ.get("MARLIN_AGENT_TOOLS_DIR") or Path.home() / ".cache" / "marlin" / "agent-tools"
)
BWRAP_PATH = os.environ.get("MARLIN_BWRAP_PATH") or None
# Longest a mirror clone or fetch may take before git is stopped.
GIT_TIMEOUT_SECONDS = envint("MARLIN_GIT_TIMEOUT", 3600)
# A transfer slower than this many bytes a second for this many seconds is stopped, so a server
# that stalls holds a worker for a minute, not for the whole GIT_TIMEOUT_SECONDS.
GIT_LOW_SPEED_LIMIT = envint("MARLIN_GIT_LOW_SPEED_LIMIT", 1000)
GIT_LOW_SPEED_SECONDS = envint("MARLIN_GIT_LOW_SPEED_SECONDS", 60)
# Git servers the catalog may reach although they resolve to loopback, private or link-local
# addresses, named as in the repository URL (an in-house server); docs/security.md.
ALLOWED_INTERNAL_GIT_HOSTS = envlist("MARLIN_ALLOWED_INTERNAL_GIT_HOSTS", [])
# Names the sandbox's egress proxy may connect to although they resolve to loopback or private
# addresses (an in-house package mirror); every other name must resolve to public addresses,
# whatever a run's allow list says (docs/sandbox.md).
EGRESS_INTERNAL_HOSTS = envlist("MARLIN_EGRESS_INTERNAL_HOSTS", [])
JOB_LEASE_SECONDS = envint("MARLIN_JOB_LEASE_SECONDS", 900)
# Python interpreters for environments whose spec names a version (docs/sandbox.md,
# "Interpreters"): "3.9=/opt/py39/bin/python3.9,3.8=/opt/py38/bin/python3.8" is looked at first,
# then uv's managed pythons, pyenv's versions under PYENV_ROOT, then the system's.
PYTHON_INTERPRETERS = os.environ.get("MARLIN_PYTHON_INTERPRETERS", "")
PYENV_ROOT = Path(
    os.environ.get("MARLIN_PYENV_ROOT") or os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv"
)
# Active time: intervals between server-stamped heartbeats at most this far apart count
# (marlin/review/activity.py); a longer gap is a pause.
ACTIVITY_GAP_SECONDS = envint("MARLIN_ACTIVITY_GAP_SECONDS", 60)

# The audit chain is keyed with an HMAC key kept out of the database (docs/security.md). Unset,
# a key is generated on first use into DATA_DIR/audit_key (fine for the demo; production sets
# MARLIN_AUDIT_KEY_FILE on every machine). Old keys stay listed so old events still verify.
AUDIT_KEY = envsecret("MARLIN_AUDIT_KEY")
AUDIT_OLD_KEYS = envsecrets("MARLIN_AUDIT_OLD_KEYS")
# Signed checkpoints of the chain's head go to this append-only file (default
# DATA_DIR/audit-checkpoints.jsonl) and, when set, to syslog: a socket path or host:port (UDP).
AUDIT_CHECKPOINT_FILE = os.environ.get("MARLIN_AUDIT_CHECKPOINT_FILE") or None
AUDIT_SYSLOG = os.environ.get("MARLIN_AUDIT_SYSLOG") or None

# Health, metrics and logs (docs/deploy.md, "Health and metrics"). /readyz fails when the data
# directory has less free space than this, when no worker's heartbeat is this recent (0: do not
# check workers), or when the database or the queue does not answer within the timeout.
READY_MIN_FREE_MB = envint("MARLIN_READY_MIN_FREE_MB", 1024)
READY_WORKER_SECONDS = envint("MARLIN_READY_WORKER_SECONDS", 120)
READY_TIMEOUT_SECONDS = envint("MARLIN_READY_TIMEOUT_SECONDS", 3)
WORKER_HEARTBEAT_SECONDS = envint("MARLIN_WORKER_HEARTBEAT_SECONDS", 15)
# /metrics wants this bearer token; unset, it answers loopback clients only.
METRICS_TOKEN = envsecret("MARLIN_METRICS_TOKEN")
METRICS_ACTIVE_MINUTES = envint("MARLIN_METRICS_ACTIVE_MINUTES", 5)
# "json": one JSON object per log line, and one line per request (marlin.monitoring.logs).
LOG_FORMAT = os.environ.get("MARLIN_LOG_FORMAT") or "plain"
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"MARLIN_LOG_FORMAT={LOG_FORMAT!r}: use plain or json.")
LOG_REQUESTS = envbool("MARLIN_LOG_REQUESTS", LOG_FORMAT == "json")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "marlin.monitoring.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("MARLIN_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
