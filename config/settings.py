"""Settings, read from the environment. Safe for production unless DEBUG=1 is asked for."""
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

from training.tiny_model import default_tiny_model_dir

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG and env_bool("REQUIRE_SECRET_KEY", False):
        raise RuntimeError("SECRET_KEY must be set in production")
    # A fixed development key is only acceptable because check --deploy flags it; production sets SECRET_KEY.
    SECRET_KEY = "dev-insecure-key-set-SECRET_KEY-in-production"  # noqa: S105

ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h.strip()]
CSRF_FAILURE_VIEW = "api.error_views.csrf_failure"  # the site's styled 403 page, not Django's bare one
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

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
    "drf_spectacular_sidecar",
    "axes",
    "annotation",
    "api",
    "workers",
    "frontend",
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
    # Last, as django-axes asks: turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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
WSGI_APPLICATION = "config.wsgi.application"

# SQLite when DATABASE_URL is unset, so `make demo` needs nothing installed.
DATABASE_URL = os.environ.get("DATABASE_URL", "")
DATABASES = {
    # Health checks off by default: they add a SELECT 1 to every request. A connection broken by a
    # database restart then fails one request per worker thread and is replaced after it.
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=env_bool("DB_CONN_HEALTH_CHECKS", False))
    if DATABASE_URL
    else {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3", "OPTIONS": {"timeout": 30}}
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out login before the password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
LOGIN_URL = "frontend:login"
LOGIN_REDIRECT_URL = "frontend:home"
LOGOUT_REDIRECT_URL = "frontend:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "media"))
MEDIA_URL = "media/"
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# The cache holds the throttles' counters and the login lockouts, so in production it must be one
# cache for every gunicorn worker and host: Redis (CACHE_URL=redis://host:6379/1, a database number
# apart from the broker's, since clearing the cache flushes its database). Without CACHE_URL each
# process has its own memory cache: fine for `make demo` and the tests, not for production
# (`check --deploy` warns: axes.W001).
CACHE_URL = os.environ.get("CACHE_URL", "")
if CACHE_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL, "KEY_PREFIX": "annotation"}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    if DEBUG:
        SILENCED_SYSTEM_CHECKS = ["axes.W001"]  # runserver is one process: its memory cache is shared

# Failed authentication: after AUTH_FAILURE_LIMIT failures within AUTH_FAILURE_WINDOW_SECONDS,
# HTTP 429 for AUTH_LOCKOUT_SECONDS. Logins (django-axes): per username and per client address, each
# counted apart; token authentication (api.authentication): per client address.
AUTH_FAILURE_LIMIT = int(os.environ.get("AUTH_FAILURE_LIMIT", "10"))
AUTH_FAILURE_WINDOW_SECONDS = int(os.environ.get("AUTH_FAILURE_WINDOW_SECONDS", "900"))
AUTH_LOCKOUT_SECONDS = int(os.environ.get("AUTH_LOCKOUT_SECONDS", "900"))
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_FAILURE_LIMIT = AUTH_FAILURE_LIMIT
# django-axes counts failures until AXES_COOLOFF_TIME passes without one, then forgets them; a
# lockout lasts AXES_COOLOFF_TIME from the failure that reached the limit (attempts while locked out
# neither count nor extend it).
AXES_COOLOFF_TIME = timedelta(seconds=AUTH_LOCKOUT_SECONDS)
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_CLIENT_IP_CALLABLE = "api.throttling.client_address"
AXES_LOCKOUT_CALLABLE = "api.throttling.login_lockout_response"
AXES_ENABLE_ADMIN = False  # the cache handler keeps nothing in the admin's tables
AXES_VERBOSE = False  # no start-up banner in every command's output
# Behind N trusted reverse proxies set NUM_PROXIES=N: the client address is then the N-th from the
# right of X-Forwarded-For. 0 (the default) uses REMOTE_ADDR and ignores X-Forwarded-For, which a
# client can forge.
NUM_PROXIES = int(os.environ.get("NUM_PROXIES", "0"))

# Security: strict unless DEBUG. Behind a TLS-terminating proxy set SECURE_PROXY_SSL_HEADER via env.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0" if DEBUG else "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy on every response (django-csp), as defence in depth behind the escaping
# and nh3: only this site's own script and style files run, nothing inline (the pages have none;
# JSON data blocks are not scripts), nothing from a CDN, no plugins, no framing.
from csp.constants import NONE, SELF  # noqa: E402

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
if env_bool("USE_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.FastTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["api.parsers.BoundedJSONParser", "api.parsers.BoundedFormParser",
                               "rest_framework.parsers.MultiPartParser"],
    "DEFAULT_SCHEMA_CLASS": "api.schema.ApiAutoSchema",
    "EXCEPTION_HANDLER": "api.exceptions.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "api.pagination.ApiPagination",
    "PAGE_SIZE": 100,
    # Request rates (DRF's throttles on the cache above): anonymous callers per address, signed-in
    # ones per user. "N/second|minute|hour|day"; empty for no limit.
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.AnonThrottle", "api.throttling.UserThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("API_THROTTLE_ANON", "60/minute"),
        "user": os.environ.get("API_THROTTLE_USER", "1200/minute"),
    },
    "NUM_PROXIES": NUM_PROXIES,
}
# The largest page a list answers (?limit=); a larger limit is a 400.
API_MAX_PAGE_SIZE = int(os.environ.get("API_MAX_PAGE_SIZE", "1000"))
SPECTACULAR_SETTINGS = {
    "TITLE": "Preference annotation platform API",
    "DESCRIPTION": (
        "Generate responses, rank them, measure agreement, export TRL datasets, train.\n\n"
        "Bodies are JSON (the prompt import is multipart); text fields refuse NUL characters (PostgreSQL "
        "cannot store them). Lists are pages (`limit`, `offset`). Every error is "
        '`{"error": {"code", "message", "fields"}}`; 429 and 503 carry Retry-After.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI assets served from the installed sidecar package, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The API's path converters (api.routing) and its one spelling of each route.
    "PATH_CONVERTER_OVERRIDES": {
        "project": {"type": "string", "pattern": "^[-a-zA-Z0-9_]+$", "description": "The project's id or slug."},
        "id": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
    },
    "PREPROCESSING_HOOKS": ["api.schema.drop_slashless_duplicates"],
}

# Celery. With no CELERY_BROKER_URL tasks run in-process (eager), so the demo needs no Redis.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Queues and routes: workers/queues.py (applied in config/celery.py).
# An unacknowledged message (its worker died) is redelivered after this many seconds.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600"))}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Long-running work (generation batches, exports, training jobs) beats a heartbeat every
# WORK_HEARTBEAT_SECONDS; the reaper (celery beat, every WORK_REAP_EVERY_SECONDS) re-sends a task
# whose beat is older than WORK_STALE_SECONDS: a dead worker's work resumes within about
# WORK_STALE_SECONDS + WORK_REAP_EVERY_SECONDS, however long the visibility timeout above.
WORK_HEARTBEAT_SECONDS = float(os.environ.get("WORK_HEARTBEAT_SECONDS", "10"))
WORK_STALE_SECONDS = float(os.environ.get("WORK_STALE_SECONDS", "60"))
WORK_REAP_EVERY_SECONDS = float(os.environ.get("WORK_REAP_EVERY_SECONDS", "30"))

# Generation. GENERATION_MODEL unset: the tiny model the project builds locally (training.tiny_model),
# cached outside the checkout ($XDG_CACHE_HOME/annotation-platform/tiny-chat-model) unless TINY_MODEL_DIR says.
GENERATION_MODEL = os.environ.get("GENERATION_MODEL", "")
TINY_MODEL_DIR = default_tiny_model_dir()
# The OpenAI-compatible backend (sampling.openai_backend); the generation service passes these on.
OPENAI_BASE_URL = os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8001/v1")
OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "")
OPENAI_CONCURRENCY = int(os.environ.get("OPENAI_CONCURRENCY", "8"))  # requests in flight per batch
OPENAI_TIMEOUT_SECONDS = float(os.environ.get("OPENAI_TIMEOUT_SECONDS", "120"))
# The SDK's own retries per request (429, 5xx, timeouts), before the Celery task retries the batch.
OPENAI_MAX_RETRIES = int(os.environ.get("OPENAI_MAX_RETRIES", "5"))
OPENAI_BACKOFF_SECONDS = float(os.environ.get("OPENAI_BACKOFF_SECONDS", "0.5"))  # the first retry's delay

# Import limits (annotation.services.importing; docs/importing.md).
IMPORT_MAX_FILE_BYTES = int(os.environ.get("IMPORT_MAX_FILE_BYTES", str(1024 * 1024 * 1024)))
IMPORT_MAX_LINE_BYTES = int(os.environ.get("IMPORT_MAX_LINE_BYTES", str(1024 * 1024)))
IMPORT_MAX_MESSAGES = int(os.environ.get("IMPORT_MAX_MESSAGES", "64"))
IMPORT_MAX_RESPONSES = int(os.environ.get("IMPORT_MAX_RESPONSES", "16"))
# 1: a bulk import leaves its responses' full-text vectors to a fill after its commit (about twice as
# fast an import; searches read those responses' text until the fill is done). 0: computed in the import.
IMPORT_DEFER_SEARCH_VECTORS = env_bool("IMPORT_DEFER_SEARCH_VECTORS", True)

# 1: run the portable twins of the PostgreSQL-only hot-path statements on PostgreSQL too (annotation/sql).
PORTABLE_SQL = env_bool("PORTABLE_SQL", False)
# 0: the hot paths' raw statements (annotation.sql.cursor) are not prepared on the server; needed
# behind a connection pooler in transaction mode that does not track prepared statements.
PREPARED_STATEMENTS = env_bool("PREPARED_STATEMENTS", True)
# 1: a lease shows the Markdown HTML rendered ahead of time (annotation.services.prerender) where
# there is some; 0: every lease renders, as before (a comparison: bench/serving.py @live-render).
PRERENDERED_HTML = env_bool("PRERENDERED_HTML", True)

# At most one agreement refresh per project in this many seconds (annotation.services.agreement_cache).
AGREEMENT_REFRESH_SECONDS = float(os.environ.get("AGREEMENT_REFRESH_SECONDS", "30"))

# Exports (annotation.services.export): tasks per read round trip (three queries per chunk);
# memory grows with it (about 30 MB per 1,000 tasks at peak), the number of round trips shrinks
# (2,000 was 6% faster and 29% bigger: docs/export.md). Tests make it small.
EXPORT_CHUNK_TASKS = int(os.environ.get("EXPORT_CHUNK_TASKS", "1000"))

# Webhooks (annotation.services.webhooks, docs/webhooks.md). WEBHOOK_ALLOW_PRIVATE=1 lets webhooks
# reach loopback, private and link-local addresses (a receiver on the same host or network).
WEBHOOK_ALLOW_PRIVATE = env_bool("WEBHOOK_ALLOW_PRIVATE", False)
# Attempts per delivery, the first retry's delay (doubled after each failed attempt, plus up to 25%
# jitter: 30 s, 1, 2, 4, 8, 16, 32 min with the defaults) and the connect/write/read timeout.
WEBHOOK_MAX_ATTEMPTS = int(os.environ.get("WEBHOOK_MAX_ATTEMPTS", "8"))
WEBHOOK_RETRY_BASE_SECONDS = float(os.environ.get("WEBHOOK_RETRY_BASE_SECONDS", "30"))
WEBHOOK_TIMEOUT_SECONDS = float(os.environ.get("WEBHOOK_TIMEOUT_SECONDS", "10"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # Django logs every 4xx as a warning; a 409 for a lease lost to another tab or a 400 for bad
    # input is ordinary traffic here, and a line per request costs CPU under load. 5xx still log.
    "loggers": {"django.request": {"level": os.environ.get("DJANGO_REQUEST_LOG_LEVEL", "ERROR")}},
}
