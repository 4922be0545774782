"""A real OpenID Connect provider (django-oidc-provider) for the single sign-on tests, run by
`tests.sso.provider.running` as its own Django process on 127.0.0.1 with its own SQLite file.
It shares nothing with Marlin but the machine."""

import os
import secrets

SECRET_KEY = secrets.token_urlsafe(40)
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
SITE_URL = os.environ["PROVIDER_SITE_URL"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "oidc_provider",
    "tests.sso.provider",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "tests.sso.provider.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["PROVIDER_DB"]}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGIN_URL = "/login/"
# The browser holds Marlin's cookies for the same host (127.0.0.1, another port): other names.
SESSION_COOKIE_NAME = "provider_session"
CSRF_COOKIE_NAME = "provider_csrftoken"

OIDC_USERINFO = "tests.sso.provider.hooks.userinfo"
OIDC_EXTRA_SCOPE_CLAIMS = "tests.sso.provider.hooks.GroupClaims"
OIDC_IDTOKEN_PROCESSING_HOOK = "tests.sso.provider.hooks.tamper_with_id_token"
OIDC_SKIP_CONSENT_EXPIRE = 30 * 24 * 60 * 60

LOGGING = {
    "version": 1,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
