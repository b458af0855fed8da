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
# Neither: a deployment, which never falls back to a development default (end of this module).
PRODUCTION = not (DEBUG or TESTING)

# Development and tests run on these when nothing else is set. They are published in this
# repository, so nothing they protect is secret: production refuses every one of them.
DEVELOPMENT_SECRET_KEY = "insecure-development-key-never-use-in-production"  # noqa: S105
DEVELOPMENT_TOKEN_KEY = "Y2Fyc2hhcmUtZGV2LWtleS1ub3QtcHJvZHVjdGlvbiE="  # noqa: S105
DEVELOPMENT_SMARTCAR_CLIENT_SECRET = "carshare-dev-secret"  # noqa: S105
DEVELOPMENT_SMARTCAR_MANAGEMENT_TOKEN = "carshare-dev-management-token"  # noqa: S105

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off.")
    SECRET_KEY = DEVELOPMENT_SECRET_KEY

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")
# The port of the development web server (`make run`, the Procfile's web). The site's address
# follows it unless CARSHARE_SITE_URL is set, so the links in emails and Connect's redirect
# reach the server that is actually running.
CARSHARE_PORT = int(os.environ.get("CARSHARE_PORT") or "8000")
SITE_URL = (os.environ.get("CARSHARE_SITE_URL") or f"http://127.0.0.1:{CARSHARE_PORT}").rstrip("/")

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
    # Before anything reads the body (CSRF reads a POST's form).
    "carshare.middleware.RequestSizeLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "carshare.middleware.PermissionsPolicyMiddleware",
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
    "vehicles.tasks.confirm_vehicle_commands": {"queue": "vehicle"},
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
# An open trip page asks for its status this often while the trip runs or starts within the
# hour, or its end lock is still pending (a trip further off, or a request: once a minute).
BOOKING_PAGE_POLL_SECONDS = int(os.environ.get("BOOKING_PAGE_POLL_SECONDS", "5"))
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
# A trip's unlock at its start tries a car that cannot be reached (asleep, no coverage, the
# cloud down or throttling) again for this long, with pauses by error (vehicles.cloud.sending).
TRIP_START_RETRY_MINUTES = int(os.environ.get("TRIP_START_RETRY_MINUTES", "15"))
# When the start's unlock has not reached the car this long after the start (or has failed
# this many sends), the renter, the owner and the admins are told (keys.startunlocks).
TRIP_START_ALERT_AFTER_S = int(os.environ.get("TRIP_START_ALERT_AFTER_S", "60"))
TRIP_START_ALERT_AFTER_ATTEMPTS = int(os.environ.get("TRIP_START_ALERT_AFTER_ATTEMPTS", "3"))
# A trip whose car has not opened this long after its start (the start's unlock, the renter's
# ladder and the owner all failed) is cancelled by carshare without a fee.
TRIP_START_GIVE_UP_MINUTES = int(os.environ.get("TRIP_START_GIVE_UP_MINUTES", "30"))
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
ACCOUNT_RATE_LIMITS: dict[str, str] | bool = {
    "login": "30/m/ip",
    "login_failed": "10/m/ip,5/5m/key",
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
}
if env_bool("CARSHARE_DISABLE_RATE_LIMITS"):
    ACCOUNT_RATE_LIMITS = False
# Who the client is, for the per-IP limits above. Behind the TLS proxy REMOTE_ADDR is the
# proxy's, the same for everyone; X-Forwarded-For names the client, but only the entries our
# own proxies appended can be believed. 0 (the default, no proxy) ignores the header, so a
# forged one cannot dodge the limits; with N proxies the N-th entry from the right is the
# client. Or the one header a trusted proxy sets to the client's address (X-Real-IP, ...).
ALLAUTH_TRUSTED_PROXY_COUNT = int(os.environ.get("CARSHARE_TRUSTED_PROXY_COUNT") or "0")
ALLAUTH_TRUSTED_CLIENT_IP_HEADER = os.environ.get("CARSHARE_TRUSTED_CLIENT_IP_HEADER") or None
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
# --- Uploads: car photos ---------------------------------------------------------------------
# A request body over this is refused (413) before anything reads it (carshare.middleware):
# the photos of one form or API call together, with room for the rest of the form.
CARSHARE_MAX_REQUEST_BYTES = int(os.environ.get("CARSHARE_MAX_REQUEST_BYTES") or 50 * 1024 * 1024)
# Uploads over this go to a temporary file rather than memory; form fields and JSON (the rest
# of a body) may take this much memory at most (Django's defaults, 2.5 MB).
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
# Photos per car, counted under a lock on the car so two uploads at once cannot pass it.
CARSHARE_MAX_PHOTOS_PER_CAR = int(os.environ.get("CARSHARE_MAX_PHOTOS_PER_CAR") or "10")
# Pixels a photo may have, read from its header before it is decoded: decoding takes about
# 4 bytes a pixel, so 40 megapixels (a 7700 x 5200 camera) stays near 160 MB, and a small file
# declaring 13000 x 13000 is refused without costing any.
CARSHARE_PHOTO_MAX_PIXELS = int(os.environ.get("CARSHARE_PHOTO_MAX_PIXELS") or "40000000")

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
        # An injected <base> would send every relative script and form URL elsewhere.
        "base-uri": ["'self'"],
    }
}
# Browser features a page may ask for (carshare.middleware.PermissionsPolicyMiddleware): only
# "Use my location" on the browse and car forms (geolocation, this site only); everything else
# is off for the site and for anything it frames.
PERMISSIONS_POLICY: dict[str, list[str]] = {
    "geolocation": ["self"],
    **{
        feature: []
        for feature in [
            "accelerometer", "autoplay", "camera", "display-capture", "encrypted-media",
            "fullscreen", "gyroscope", "hid", "idle-detection", "magnetometer", "microphone",
            "midi", "payment", "picture-in-picture", "publickey-credentials-get",
            "screen-wake-lock", "serial", "usb", "xr-spatial-tracking",
        ]
    },
}  # fmt: skip

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
# live | test | simulated on real Smartcar; "simulator" means our own local simulator, the
# default in development and tests only: a deployment that forgot SMARTCAR_* must not quietly
# hand its owners' cars to a fake cloud, so there it has to be chosen by name.
SMARTCAR_MODE = os.environ.get("SMARTCAR_MODE", "") or (
    "live" if SMARTCAR_CLIENT_ID else ("" if PRODUCTION else "simulator")
)
if not SMARTCAR_MODE:
    raise ImproperlyConfigured(
        "Choose the vehicle cloud when DJANGO_DEBUG is off: SMARTCAR_CLIENT_ID and "
        "SMARTCAR_CLIENT_SECRET for Smartcar, or SMARTCAR_MODE=simulator (with a client secret "
        "of your own) for the local simulator."
    )
if SMARTCAR_MODE == "simulator":
    # The app's own client, registered in the simulator at start; its published secret only
    # outside production.
    SMARTCAR_CLIENT_ID = SMARTCAR_CLIENT_ID or "carshare-dev"
    if not (SMARTCAR_CLIENT_SECRET or PRODUCTION):
        SMARTCAR_CLIENT_SECRET = DEVELOPMENT_SMARTCAR_CLIENT_SECRET
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
# webhook endpoint answers 404 (except in development and tests on the simulator, which has a
# published token).
SMARTCAR_WEBHOOK_SECRET = os.environ.get("SMARTCAR_WEBHOOK_SECRET", "") or (
    DEVELOPMENT_SMARTCAR_MANAGEMENT_TOKEN if SMARTCAR_MODE == "simulator" and not PRODUCTION else ""
)
# Deliveries older than this are refused as replays (Smartcar retries for about 3 minutes).
SMARTCAR_WEBHOOK_MAX_AGE = int(os.environ.get("SMARTCAR_WEBHOOK_MAX_AGE", "600"))
# Deliveries stamped further ahead of our clock than this are refused (clocks drift a little).
SMARTCAR_WEBHOOK_CLOCK_SKEW = int(os.environ.get("SMARTCAR_WEBHOOK_CLOCK_SKEW", "60"))
# Larger webhook bodies are refused with 413 unread (an event with every signal is a few KiB).
SMARTCAR_WEBHOOK_MAX_BYTES = int(os.environ.get("SMARTCAR_WEBHOOK_MAX_BYTES", str(64 * 1024)))
# Seconds to wait for the vehicle cloud: connecting, and reading an answer (commands take time).
VEHICLE_CLOUD_CONNECT_TIMEOUT = float(os.environ.get("VEHICLE_CLOUD_CONNECT_TIMEOUT", "5"))
VEHICLE_CLOUD_READ_TIMEOUT = float(os.environ.get("VEHICLE_CLOUD_READ_TIMEOUT", "60"))
# A car's status is read from the cloud at most this often (quota and the car's battery).
VEHICLE_STATUS_MIN_INTERVAL = int(os.environ.get("VEHICLE_STATUS_MIN_INTERVAL", "60"))

# OAuth tokens are encrypted at rest with MultiFernet: a comma-separated list of Fernet keys,
# newest first (`manage.py rotate_token_keys` re-encrypts under the first).
CARSHARE_TOKEN_KEYS = env_list("CARSHARE_TOKEN_KEYS")
if not CARSHARE_TOKEN_KEYS:
    if PRODUCTION:
        raise ImproperlyConfigured("CARSHARE_TOKEN_KEYS must be set when DJANGO_DEBUG is off.")
    CARSHARE_TOKEN_KEYS = [DEVELOPMENT_TOKEN_KEY]

# --- Production runs on nothing published ---------------------------------------------------
# A development secret copied into a deployment (from this module, .env.example or a shell
# history) would let anyone sign sessions, read the stored car tokens or pose as the vehicle
# cloud: refuse to start, whatever the vehicle cloud, the simulator included.
if PRODUCTION:
    _development_secrets = {
        DEVELOPMENT_SECRET_KEY,
        DEVELOPMENT_TOKEN_KEY,
        DEVELOPMENT_SMARTCAR_CLIENT_SECRET,
        DEVELOPMENT_SMARTCAR_MANAGEMENT_TOKEN,
    }
    _in_use = {
        "DJANGO_SECRET_KEY": [SECRET_KEY],
        "CARSHARE_TOKEN_KEYS": CARSHARE_TOKEN_KEYS,
        "SMARTCAR_CLIENT_SECRET": [SMARTCAR_CLIENT_SECRET],
        "SMARTCAR_WEBHOOK_SECRET": [SMARTCAR_WEBHOOK_SECRET],
    }
    _published = sorted(
        name for name, values in _in_use.items() if _development_secrets.intersection(values)
    )
    if _published:
        raise ImproperlyConfigured(
            "A published development secret is set in production: "
            + ", ".join(_published)
            + ". Generate new values (see .env.example)."
        )
    if not SMARTCAR_CLIENT_SECRET:
        raise ImproperlyConfigured(
            "SMARTCAR_CLIENT_SECRET must be set when DJANGO_DEBUG is off (the simulator's too)."
        )
