"""carshare settings: one module, driven by the environment (see .env.example).

DEBUG is off unless DJANGO_DEBUG is set; SECRET_KEY is then required. With DATABASE_URL and
REDIS_URL unset, the embedded servers of carshare/devservers.py are the defaults.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG")
# Under pytest: plain-HTTP cookies and a throwaway key, as for local development.
TESTING = env_bool("CARSHARE_TESTING") or "pytest" in sys.modules

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not (DEBUG or TESTING):
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off.")
    SECRET_KEY = "insecure-development-key-never-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")
SITE_URL = os.environ.get("CARSHARE_SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "django_htmx",
    "template_partials",
    "ninja",
    "allauth",
    "allauth.account",
    "allauth.headless",
    "accounts",
    "vehicles",
    "bookings",
    "keys",
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
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "carshare.urls"
WSGI_APPLICATION = "carshare.wsgi.application"

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
                "csp.context_processors.nonce",
            ],
            # django-template-partials as builtins: templates skip {% load partials %}.
            "builtins": ["template_partials.templatetags.partials"],
        },
    }
]

# --- Database: PostgreSQL only -------------------------------------------------------------
# The default is the embedded server started by carshare/devservers.py.
EMBEDDED_DATABASE_URL = "postgres://postgres@127.0.0.1:{}/carshare".format(
    os.environ.get("EMBEDDED_PG_PORT", "15432")
)
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or EMBEDDED_DATABASE_URL,
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
# Lets parallel test runs on one server keep apart (CARSHARE_TEST_DB=test_carshare_2).
if os.environ.get("CARSHARE_TEST_DB"):
    DATABASES["default"]["TEST"] = {"NAME": os.environ["CARSHARE_TEST_DB"]}
# A bounded pool of connections per process (psycopg-pool), for the vehicle worker's many threads:
# each borrows a connection only for its short database steps and gives it back before calling
# a car, so hundreds of commands in flight need a handful of PostgreSQL connections, not one
# each. Pooled connections replace persistent ones (Django refuses both at once).
DATABASE_POOL_MAX_SIZE = int(os.environ.get("DATABASE_POOL_MAX_SIZE", "0"))
if DATABASE_POOL_MAX_SIZE > 0:
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DATABASE_POOL_MAX_SIZE,
        # Seconds a thread waits for a free connection before the task fails (and is retried
        # by the outbox sweep): far more than a burst's queue, far less than a hung database.
        "timeout": float(os.environ.get("DATABASE_POOL_TIMEOUT", "30")),
    }
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("carshare runs on PostgreSQL only; DATABASE_URL must be postgres://")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: Celery broker and the cache ----------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:{}/0".format(
    os.environ.get("EMBEDDED_REDIS_PORT", "16379")
)
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "carshare"),
    }
}

# --- Celery (https://docs.celeryq.dev/en/stable/django/first-steps-with-django.html) --------
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None  # tasks record their outcome in PostgreSQL, not in Redis
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ALWAYS_EAGER = False  # a real worker everywhere, tests included
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BEAT_SCHEDULE: dict[str, dict] = {}
# --- Vehicle commands and live status (issue 4): the "vehicle" queue and the sweeps ------
# Calls to cars wait seconds on the network: they go to the "vehicle" worker (threads, many
# slots; see Procfile), so they never queue behind emails on the default worker.
CELERY_TASK_ROUTES = {
    "vehicles.tasks.run_vehicle_command": {"queue": "vehicle"},
    "vehicles.tasks.refresh_vehicle_status": {"queue": "vehicle"},
    "vehicles.tasks_connections.revoke_vehicle_access": {"queue": "vehicle"},
    "vehicles.tasks_connections.refresh_connection_tokens": {"queue": "vehicle"},
}
# The database is the truth, the broker a doorbell: this sweep re-sends commands whose message
# was lost, expires overdue ones and settles those a dead worker left `sent`.
CELERY_BEAT_SCHEDULE["sweep-vehicle-commands"] = {
    "task": "vehicles.tasks.sweep_vehicle_commands",
    "schedule": 10.0,
    "options": {"expires": 10.0},  # a sweep still waiting when the next is due is redundant
}
# Connections whose refresh token nears its 60 days are refreshed (or their owner told).
CELERY_BEAT_SCHEDULE["refresh-aging-connections"] = {
    "task": "vehicles.tasks_connections.refresh_aging_connections",
    "schedule": 3600.0,
}
# --- end of the vehicle commands block ----------------------------------------------------
# --- Bookings (issue 5): the trip clock and the booking sweeps ----------------------------
# The database says what is due; these sweeps find it from rows, so a lost message or a dead
# worker only delays a move or an email. Trips starting within the hour also get ETA tasks.
CELERY_BEAT_SCHEDULE["run-trip-clock"] = {
    "task": "bookings.tasks.run_trip_clock",
    "schedule": 30.0,
    "options": {"expires": 30.0},  # a sweep still waiting when the next is due is redundant
}
CELERY_BEAT_SCHEDULE["expire-unanswered-requests"] = {
    "task": "bookings.tasks.expire_unanswered_requests",
    "schedule": 60.0,
    "options": {"expires": 60.0},
}
CELERY_BEAT_SCHEDULE["queue-trip-reminders"] = {
    "task": "bookings.tasks.queue_trip_reminders",
    "schedule": 60.0,
    "options": {"expires": 60.0},
}
# --- end of the bookings block -------------------------------------------------------------
# --- Digital keys (issue 6): the key clock and the end locks -----------------------------
# Opens windows that have started, locks cars at the end of service windows, expires keys past
# their grace and retries (and alerts about) end-of-window locks the car has not confirmed.
KEY_CLOCK_SWEEP_S = float(os.environ.get("KEY_CLOCK_SWEEP_S", "15"))
CELERY_BEAT_SCHEDULE["run-key-clock"] = {
    "task": "keys.tasks.run_key_clock",
    "schedule": KEY_CLOCK_SWEEP_S,
    "options": {"expires": KEY_CLOCK_SWEEP_S},
}
# After a trip or service window ends, its keys may still lock (never unlock) for this long.
KEY_LOCK_GRACE_MINUTES = int(os.environ.get("KEY_LOCK_GRACE_MINUTES", "15"))


def _rate(name: str, default: str) -> tuple[int, int]:
    """ "10/300" → at most 10 attempts per 300 seconds."""
    count, seconds = os.environ.get(name, default).split("/")
    return int(count), int(seconds)


# Accepted unlocks (new commands; not refused presses, nor presses joining an unlock already on
# its way) per person and per car, in a sliding window.
KEY_UNLOCK_RATE_PER_PERSON = _rate("KEY_UNLOCK_RATE_PER_PERSON", "10/300")
KEY_UNLOCK_RATE_PER_CAR = _rate("KEY_UNLOCK_RATE_PER_CAR", "20/300")
# --- end of the keys block ----------------------------------------------------------------

# --- Auth and allauth (https://docs.allauth.org/en/latest/account/configuration.html) -------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "vehicles:car_browse"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[carshare] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if not DEBUG else "http"
# allauth's own rate limits (login, failed logins, signup, password reset) use the cache above.
ACCOUNT_RATE_LIMITS = {
    "login": "30/m/ip",
    "login_failed": "10/m/ip,5/5m/key",
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
}
if env_bool("CARSHARE_DISABLE_RATE_LIMITS"):
    ACCOUNT_RATE_LIMITS = False
HEADLESS_ONLY = False
HEADLESS_FRONTEND_URLS = {
    "account_confirm_email": SITE_URL + "/accounts/confirm-email/{key}/",
    "account_reset_password_from_key": SITE_URL + "/accounts/password/reset/key/{key}/",
    "account_signup": SITE_URL + "/accounts/signup/",
}

# --- Email -----------------------------------------------------------------------------------
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "carshare <no-reply@carshare.test>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
if os.environ.get("EMAIL_HOST"):
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = os.environ["EMAIL_HOST"]
    EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "587"))
    EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

# --- Internationalisation --------------------------------------------------------------------
LANGUAGE_CODE = "en"
TIME_ZONE = "Europe/Amsterdam"
USE_I18N = True
USE_TZ = True

# --- Static and media files ------------------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / ".local" / "staticfiles"))
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / ".local" / "media"))
# Serve uploaded photos from Django unless a web server or object store does it.
SERVE_MEDIA = env_bool("CARSHARE_SERVE_MEDIA", True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if not (DEBUG or TESTING)
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
# Development and tests serve static files straight from static/ (no collectstatic needed).
WHITENOISE_AUTOREFRESH = DEBUG or TESTING
WHITENOISE_USE_FINDERS = DEBUG or TESTING
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# --- Security --------------------------------------------------------------------------------
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG and not TESTING)
SESSION_COOKIE_SECURE = not DEBUG and not TESTING
CSRF_COOKIE_SECURE = not DEBUG and not TESTING
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_SECURE_HSTS_SECONDS", "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if DEBUG or TESTING:
    SECURE_HSTS_SECONDS = 0
    SECURE_SSL_REDIRECT = False

# django-csp 4: no inline scripts; behaviour lives in static/js/.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

# --- carshare --------------------------------------------------------------------------------
CARSHARE_SEARCH_PAGE_SIZE = 12

# --- The vehicle cloud (Smartcar, or the local simulator when SMARTCAR_* are unset) ----------
# The simulator (`make simulator`, started by `make run`) speaks Smartcar's API on this URL.
SIMULATOR_URL = os.environ.get(
    "SIMULATOR_URL", "http://127.0.0.1:{}".format(os.environ.get("SIMULATOR_PORT", "8100"))
)
SMARTCAR_CLIENT_ID = os.environ.get("SMARTCAR_CLIENT_ID", "")
SMARTCAR_CLIENT_SECRET = os.environ.get("SMARTCAR_CLIENT_SECRET", "")
SMARTCAR_REDIRECT_URI = os.environ.get("SMARTCAR_REDIRECT_URI", "")
# live | test | simulated on real Smartcar; "simulator" means our own local simulator.
SMARTCAR_MODE = os.environ.get("SMARTCAR_MODE", "") or (
    "live" if SMARTCAR_CLIENT_ID else "simulator"
)
if SMARTCAR_MODE == "simulator":
    # The app's own development client, registered in the simulator at start.
    SMARTCAR_CLIENT_ID = SMARTCAR_CLIENT_ID or "carshare-dev"
    SMARTCAR_CLIENT_SECRET = SMARTCAR_CLIENT_SECRET or "carshare-dev-secret"
    SMARTCAR_REDIRECT_URI = SMARTCAR_REDIRECT_URI or SITE_URL + "/connect/callback/"
_smartcar_default = SIMULATOR_URL if SMARTCAR_MODE == "simulator" else None
SMARTCAR_API_ORIGIN = os.environ.get("SMARTCAR_API_ORIGIN") or (
    _smartcar_default or "https://api.smartcar.com"
)
SMARTCAR_AUTH_ORIGIN = os.environ.get("SMARTCAR_AUTH_ORIGIN") or (
    _smartcar_default or "https://auth.smartcar.com"
)
SMARTCAR_CONNECT_ORIGIN = os.environ.get("SMARTCAR_CONNECT_ORIGIN") or (
    _smartcar_default or "https://connect.smartcar.com"
)
# Secret Smartcar signs webhooks with (the application's management token). Unset: the
# webhook endpoint answers 404 (except in simulator mode, which has a published dev token).
SMARTCAR_WEBHOOK_SECRET = os.environ.get("SMARTCAR_WEBHOOK_SECRET", "") or (
    "carshare-dev-management-token" if SMARTCAR_MODE == "simulator" else ""
)
# Deliveries older than this are refused as replays (Smartcar retries for about 3 minutes).
SMARTCAR_WEBHOOK_MAX_AGE = int(os.environ.get("SMARTCAR_WEBHOOK_MAX_AGE", "600"))
# Seconds to wait for the vehicle cloud: connecting, and reading an answer (commands take time).
VEHICLE_CLOUD_CONNECT_TIMEOUT = float(os.environ.get("VEHICLE_CLOUD_CONNECT_TIMEOUT", "5"))
VEHICLE_CLOUD_READ_TIMEOUT = float(os.environ.get("VEHICLE_CLOUD_READ_TIMEOUT", "60"))
# A car's status is read from the cloud at most this often (quota and the car's battery).
VEHICLE_STATUS_MIN_INTERVAL = int(os.environ.get("VEHICLE_STATUS_MIN_INTERVAL", "60"))

# OAuth tokens are encrypted at rest with MultiFernet: a comma-separated list of Fernet keys,
# newest first (`manage.py rotate_token_keys` re-encrypts under the first).
CARSHARE_TOKEN_KEYS = env_list("CARSHARE_TOKEN_KEYS")
if not CARSHARE_TOKEN_KEYS:
    if not (DEBUG or TESTING):
        raise ImproperlyConfigured("CARSHARE_TOKEN_KEYS must be set when DJANGO_DEBUG is off.")
    # Development and tests only: a published key, so nothing it protects is secret.
    CARSHARE_TOKEN_KEYS = ["Y2Fyc2hhcmUtZGV2LWtleS1ub3QtcHJvZHVjdGlvbiE="]
