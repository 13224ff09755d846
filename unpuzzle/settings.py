"""Settings for the Unpuzzle media backend.

Every value comes from the environment through one ``environ.Env`` with an embedded
default, so ``manage.py`` works with nothing set (SQLite, local storage under ``var/``,
django-q2 ORM broker, console email). README.md and .env.example document each name.
"""

from __future__ import annotations

import re
from pathlib import Path

import environ
from corsheaders.defaults import default_headers as cors_default_headers
from corsheaders.defaults import default_methods as cors_default_methods

from unpuzzle.secret_key import secret_key_load_or_create, secret_key_problem
from unpuzzle.storage_options import s3_storage_options

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

# --- Core -----------------------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))
# Unset: a random key generated on first start into VAR_DIR (each deployment its own; instances
# that share sessions and playback tokens set the same SECRET_KEY). Never a public one in production.
SECRET_KEY = env.str("SECRET_KEY", default="") or secret_key_load_or_create(VAR_DIR / "secret_key")
if not DEBUG and secret_key_problem(SECRET_KEY):
    raise environ.ImproperlyConfigured(secret_key_problem(SECRET_KEY))
MEDIA_ROOT = VAR_DIR / "media"
UPLOAD_TEMP_DIR = Path(env.str("UPLOAD_TEMP_DIR", default=str(VAR_DIR / "uploads")))
# Transcode work dirs (a copy of the original, the HLS output before upload): this deployment's
# own, so its sweep never touches another deployment's on the same host.
# Disk space kept free on the upload and work dirs: uploads that would eat into it are refused
# (507) and /healthz reports less than this as unhealthy.
DISK_MIN_FREE_MB = env.int("DISK_MIN_FREE_MB", default=1024)
TRANSCODE_WORK_DIR = Path(env.str("TRANSCODE_WORK_DIR", default=str(VAR_DIR / "transcode")))
STATIC_ROOT = VAR_DIR / "static"
STATIC_URL = "static/"
MEDIA_URL = env.str("MEDIA_URL", default="/media/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "unpuzzle",
    "media_library",
    "uploads",
    "transcoding",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "unpuzzle.urls"
WSGI_APPLICATION = "unpuzzle.wsgi.application"

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
                "transcoding.context_processors.cost_alerts",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite cannot create its folder; make `manage.py` work on a fresh checkout.
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # The web server and the worker share one file: wait for locks instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # A file, not the in-memory default: live-server tests then give each server thread its own
    # connection, as in production, instead of one connection shared by concurrent requests.
    DATABASES["default"].setdefault("TEST", {}).setdefault("NAME", str(VAR_DIR / "test-db.sqlite3"))
# Each web thread keeps its connection: opening one per request cost more than a PATCH's queries.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The cache holds the API throttles' counts, so every web process and thread must see the same one:
# Redis when REDIS_URL is set, else a table of the database (`manage.py createcachetable`, run by
# scripts/run.sh; test databases get it from Django). The task clusters' stats, written twice a second,
# stay out of the database: in Redis when there is one, else in each process's memory as before.
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    _cluster_stats_cache = "default"
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "unpuzzle_cache",
            # Django's default (300) would start evicting live throttle counts with a few hundred users.
            "OPTIONS": {"MAX_ENTRIES": 20_000},
        },
        "cluster_stats": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    _cluster_stats_cache = "cluster_stats"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Storage --------------------------------------------------------------------------
STORAGE_BACKEND = env.str("STORAGE_BACKEND", default="local")
STORAGE_URL_EXPIRE_S = env.int("STORAGE_URL_EXPIRE_S", default=3600)
# /healthz reports a check that has not answered within this many seconds as failed.
HEALTH_CHECK_TIMEOUT_S = env.float("HEALTH_CHECK_TIMEOUT_S", default=1.5)
# A monitor sending "Authorization: Bearer <HEALTH_TOKEN>" sees each check's details, as staff do.
HEALTH_TOKEN = env.str("HEALTH_TOKEN", default="")
# /healthz reports a task cluster none of whose workers started, ran the minute's heartbeat task or
# transcoded for this long (a short-task cluster busy finalizing big uploads for longer looks dead).
HEALTH_WORKERS_STALE_S = env.int("HEALTH_WORKERS_STALE_S", default=600)
if STORAGE_BACKEND == "local":
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT), "base_url": MEDIA_URL, "allow_overwrite": True},
    }
elif STORAGE_BACKEND == "b2":
    _default_storage = {
        "BACKEND": "unpuzzle.storage.MediaS3Storage",
        "OPTIONS": s3_storage_options(
            key_id=env.str("BB_KEY_ID", default=""),
            application_key=env.str("BB_APPLICATION_KEY", default=""),
            endpoint=env.str("BB_ENDPOINT", default=""),
            region=env.str("BB_REGION", default=""),
            bucket_name=env.str("BB_BUCKET_NAME", default=""),
            url_expire_seconds=STORAGE_URL_EXPIRE_S,
            connect_timeout=env.float("STORAGE_CONNECT_TIMEOUT_S", default=5.0),
            read_timeout=env.float("STORAGE_READ_TIMEOUT_S", default=60.0),
            max_attempts=env.int("STORAGE_MAX_ATTEMPTS", default=5),
        ),
    }
else:
    raise environ.ImproperlyConfigured(f"STORAGE_BACKEND must be 'local' or 'b2', not {STORAGE_BACKEND!r}")

STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- CDN ------------------------------------------------------------------------------
CDN_URL = env.str("CDN_URL", default="")
CDN_TOKEN_KEY = env.str("CDN_TOKEN_KEY", default="")
CDN_TOKEN_TTL = env.int("CDN_TOKEN_TTL", default=6 * 3600)
# Who may watch a video (player page, playback API): "owner" (owner and staff) or "authenticated".
VIDEO_VISIBILITY = env.str("VIDEO_VISIBILITY", default="owner")
if VIDEO_VISIBILITY not in ("owner", "authenticated"):
    raise environ.ImproperlyConfigured(f"VIDEO_VISIBILITY must be 'owner' or 'authenticated', not {VIDEO_VISIBILITY!r}")

# Caption files (WebVTT or SRT): largest accepted file and most cues in one track.
CAPTIONS_MAX_BYTES = env.int("CAPTIONS_MAX_BYTES", default=2 * 1024 * 1024)
CAPTIONS_MAX_CUES = env.int("CAPTIONS_MAX_CUES", default=5000)

# --- Uploads --------------------------------------------------------------------------
MAX_VIDEO_SIZE_MB = env.int("MAX_VIDEO_SIZE_MB", default=500)
ALLOWED_VIDEO_FORMATS = [
    f.lower().lstrip(".") for f in env.list("ALLOWED_VIDEO_FORMATS", default=["mp4", "webm", "avi", "mov", "mkv"])
]
UPLOAD_EXPIRY_HOURS = env.int("UPLOAD_EXPIRY_HOURS", default=48)
MAX_CONCURRENT_UPLOADS = env.int("MAX_CONCURRENT_UPLOADS", default=5)
# Bytes one user's unfinished and partial tus uploads may hold in UPLOAD_TEMP_DIR (declared lengths);
# 0: MAX_VIDEO_SIZE_MB x MAX_CONCURRENT_UPLOADS, what the other limits let one user need.
UPLOAD_TEMP_MAX_PER_USER_MB = env.int("UPLOAD_TEMP_MAX_PER_USER_MB", default=0)
# A tus body slower than this many bytes/s over a window of UPLOAD_RATE_WINDOW_S seconds is cut
# (bytes received are kept; 408): a trickle cannot hold a web thread. 0: no floor.
UPLOAD_MIN_BYTES_PER_S = env.int("UPLOAD_MIN_BYTES_PER_S", default=1024)
UPLOAD_RATE_WINDOW_S = env.int("UPLOAD_RATE_WINDOW_S", default=30)
# Bodies one user may be sending at once (tus PATCH, POST with a body); 429 beyond.
UPLOAD_MAX_PATCHES_PER_USER = env.int("UPLOAD_MAX_PATCHES_PER_USER", default=4)
if UPLOAD_MAX_PATCHES_PER_USER < 1 or UPLOAD_RATE_WINDOW_S < 1 or UPLOAD_MIN_BYTES_PER_S < 0:
    raise environ.ImproperlyConfigured(
        "UPLOAD_MAX_PATCHES_PER_USER and UPLOAD_RATE_WINDOW_S must be 1 or more and UPLOAD_MIN_BYTES_PER_S 0 or more, "
        f"not {UPLOAD_MAX_PATCHES_PER_USER}, {UPLOAD_RATE_WINDOW_S} and {UPLOAD_MIN_BYTES_PER_S}"
    )
CHUNK_SIZE_MB = env.int("CHUNK_SIZE_MB", default=8)
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/api/.*$"
# Browser tus clients send these request headers and must read these response headers.
CORS_ALLOW_HEADERS = (
    *cors_default_headers,
    "tus-resumable",
    "upload-length",
    "upload-offset",
    "upload-metadata",
    "upload-checksum",
    "upload-concat",
    "upload-defer-length",
    "x-http-method-override",
)
CORS_ALLOW_METHODS = (*cors_default_methods, "HEAD")
CORS_EXPOSE_HEADERS = [
    "Location",
    "Retry-After",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Metadata",
    "Upload-Expires",
    "Upload-Concat",
    "Upload-Defer-Length",
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
]

# --- Transcoding ----------------------------------------------------------------------
FFMPEG_BIN = env.str("FFMPEG_BIN", default="ffmpeg")
FFPROBE_BIN = env.str("FFPROBE_BIN", default="ffprobe")
HLS_LADDER = env.str("HLS_LADDER", default="240p:400k,480p:800k,720p:1500k")
HLS_AUDIO_BITRATE = env.str("HLS_AUDIO_BITRATE", default="128k")
HLS_SEGMENT_SECONDS = env.int("HLS_SEGMENT_SECONDS", default=6)
# x264 capped CRF: the quality aimed at (lower = better, more bytes); the tier bitrate stays the cap.
HLS_CRF = env.float("HLS_CRF", default=23.0)
HLS_X264_PRESET = env.str("HLS_X264_PRESET", default="veryfast")
TRANSCODE_TIMEOUT_S = env.int("TRANSCODE_TIMEOUT_S", default=4 * 3600)
# Sources longer than TRANSCODE_CHUNK_MIN_SECONDS are cut into chunks of TRANSCODE_CHUNK_SECONDS (a multiple of
# HLS_SEGMENT_SECONDS; 0 turns chunking off) that every worker of the transcode cluster encodes in parallel.
TRANSCODE_CHUNK_MIN_SECONDS = env.int("TRANSCODE_CHUNK_MIN_SECONDS", default=600)
TRANSCODE_CHUNK_SECONDS = env.int("TRANSCODE_CHUNK_SECONDS", default=150)
if TRANSCODE_CHUNK_SECONDS < 0 or TRANSCODE_CHUNK_SECONDS % HLS_SEGMENT_SECONDS:
    raise environ.ImproperlyConfigured(
        f"TRANSCODE_CHUNK_SECONDS={TRANSCODE_CHUNK_SECONDS} must be 0 (no chunks) or a multiple of "
        f"HLS_SEGMENT_SECONDS={HLS_SEGMENT_SECONDS}, so chunks end on segment boundaries"
    )
# Threads of each x264 encoder (0: x264's choice, one per core); 1 when each worker has a core of its own.
TRANSCODE_THREADS = env.int("TRANSCODE_THREADS", default=0)
if TRANSCODE_THREADS < 0:
    raise environ.ImproperlyConfigured(f"TRANSCODE_THREADS must be 0 (automatic) or more, not {TRANSCODE_THREADS}")
# Scrubbing previews: a 160 px frame every PREVIEW_INTERVAL_S seconds (longer for videos over ~83 min,
# at most 1000 frames), tiled 10x10 into JPEG sheets with a WebVTT track, from the ladder's own decode.
PREVIEW_THUMBNAILS = env.bool("PREVIEW_THUMBNAILS", default=True)
PREVIEW_INTERVAL_S = env.float("PREVIEW_INTERVAL_S", default=5.0)
if PREVIEW_INTERVAL_S <= 0:
    raise environ.ImproperlyConfigured(f"PREVIEW_INTERVAL_S must be more than 0 seconds, not {PREVIEW_INTERVAL_S:g}")
# EBU R128 loudness normalisation (two-pass loudnorm: an audio-only measuring pass, then a constant gain).
LOUDNESS_NORMALIZE = env.bool("LOUDNESS_NORMALIZE", default=True)
LOUDNESS_TARGET_LUFS = env.float("LOUDNESS_TARGET_LUFS", default=-16.0)
if not -70 <= LOUDNESS_TARGET_LUFS <= -5:
    raise environ.ImproperlyConfigured(
        f"LOUDNESS_TARGET_LUFS must be between -70 and -5 (LUFS; -16 suits speech online), not {LOUDNESS_TARGET_LUFS:g}"
    )
# The largest source accepted (0 = unchecked), judged on what ffprobe reads before ffmpeg touches the file:
# coded pixels (4096x2304: 4K landscape or portrait fits), pixels x frames per second (that at 60 fps),
# duration, bytes per second of declared duration (a still slide without sound takes ~34-2600), and the
# longest stretch in which no stream has a packet.
MAX_SOURCE_PIXELS = env.int("MAX_SOURCE_PIXELS", default=4096 * 2304)
MAX_SOURCE_PIXEL_RATE = env.int("MAX_SOURCE_PIXEL_RATE", default=4096 * 2304 * 60)
MAX_SOURCE_DURATION_S = env.int("MAX_SOURCE_DURATION_S", default=6 * 3600)
MIN_SOURCE_BYTES_PER_S = env.float("MIN_SOURCE_BYTES_PER_S", default=16.0)
MAX_SOURCE_TIMESTAMP_GAP_S = env.float("MAX_SOURCE_TIMESTAMP_GAP_S", default=300.0)
TRANSCODE_MAX_ATTEMPTS = env.int("TRANSCODE_MAX_ATTEMPTS", default=3)
# A running job whose heartbeat (saved every ~2 s) is older than this lost its worker.
TRANSCODE_HEARTBEAT_STALE_S = env.int("TRANSCODE_HEARTBEAT_STALE_S", default=300)
# The reaper also dispatches retries whose backoff is over and tasks a killed cluster stranded.
TRANSCODE_REAP_EVERY_MINUTES = env.int("TRANSCODE_REAP_EVERY_MINUTES", default=1)
# A queued job whose task a cluster fetched (or lost) this long ago without starting is dispatched again.
TRANSCODE_DISPATCH_STALE_S = env.int("TRANSCODE_DISPATCH_STALE_S", default=120)
# Attempts ended by storage, network or database errors are retried after a backoff doubling from
# TRANSCODE_RETRY_BACKOFF_S up to TRANSCODE_RETRY_BACKOFF_MAX_S, this many times (defaults: ~90 min
# of outage), and do not count against TRANSCODE_MAX_ATTEMPTS.
TRANSCODE_TRANSIENT_RETRIES = env.int("TRANSCODE_TRANSIENT_RETRIES", default=10)
TRANSCODE_RETRY_BACKOFF_S = env.int("TRANSCODE_RETRY_BACKOFF_S", default=30)
TRANSCODE_RETRY_BACKOFF_MAX_S = env.int("TRANSCODE_RETRY_BACKOFF_MAX_S", default=900)
# A superseded HLS folder stays this long after a re-transcode: players hold its URLs for at most
# the longest lifetime of a playback URL the app hands out (CDN_TOKEN_TTL; STORAGE_URL_EXPIRE_S).
HLS_PREVIOUS_OUTPUT_GRACE_S = env.int("HLS_PREVIOUS_OUTPUT_GRACE_S", default=max(CDN_TOKEN_TTL, STORAGE_URL_EXPIRE_S))
if HLS_PREVIOUS_OUTPUT_GRACE_S < 0:
    raise environ.ImproperlyConfigured(
        f"HLS_PREVIOUS_OUTPUT_GRACE_S must be 0 (delete at once) or more seconds, not {HLS_PREVIOUS_OUTPUT_GRACE_S}"
    )

# --- Costs and budget -----------------------------------------------------------------
MONTHLY_BUDGET_USD = env.str("MONTHLY_BUDGET_USD", default="100.00")
B2_STORAGE_USD_PER_GB_MONTH = env.str("B2_STORAGE_USD_PER_GB_MONTH", default="0.006")
B2_DOWNLOAD_USD_PER_GB = env.str("B2_DOWNLOAD_USD_PER_GB", default="0.00")
CDN_USD_PER_GB = env.str("CDN_USD_PER_GB", default="0.01")
TRANSCODE_USD_PER_MINUTE = env.str("TRANSCODE_USD_PER_MINUTE", default="0.005")
TRANSCODE_USD_PER_CPU_HOUR = env.str("TRANSCODE_USD_PER_CPU_HOUR", default="0")
# Most one video's transcode may cost (0 = no ceiling): estimated from the probe before it starts,
# re-checked from the encoded output and CPU while it runs. 6 h x 3 renditions at $0.005/min is $5.40.
TRANSCODE_MAX_VIDEO_USD = env.str("TRANSCODE_MAX_VIDEO_USD", default="6.00")
B2_CLASS_B_USD_PER_10K = env.str("B2_CLASS_B_USD_PER_10K", default="0.004")
B2_CLASS_C_USD_PER_1K = env.str("B2_CLASS_C_USD_PER_1K", default="0.004")
USER_MONTHLY_UPLOAD_GB = env.str("USER_MONTHLY_UPLOAD_GB", default="0")
USER_MONTHLY_TRANSCODE_MINUTES = env.str("USER_MONTHLY_TRANSCODE_MINUTES", default="0")
COSTS_DAILY_AT = env.str("COSTS_DAILY_AT", default="00:15")
COST_ALERT_EMAILS = env.list("COST_ALERT_EMAILS", default=[])
ADMINS = [(addr, addr) for addr in env.list("ADMIN_EMAILS", default=[])]

# --- Background tasks (django-q2) -----------------------------------------------------
# Two clusters on one ORM broker, each polling its own queue (OrmQ.key = cluster name): short
# tasks (upload finalization, the schedules) never wait behind an hours-long transcode. A qcluster
# process serves the cluster its Q_CLUSTER_NAME names; without it, the short-task one.
SHORT_TASKS_CLUSTER = "unpuzzle"
TRANSCODE_CLUSTER = "transcode"
# Finalizing one upload (sha256, integrity pass, copy to storage of a multi-GB file) fits well within this.
Q_TIMEOUT_S = env.int("Q_TIMEOUT_S", default=2 * 3600)
Q_WORKERS = env.int("Q_WORKERS", default=2)
# 0: scripts/run.sh starts no transcode cluster (transcodes run in other containers).
TRANSCODE_WORKERS = env.int("TRANSCODE_WORKERS", default=1)
if Q_WORKERS < 1:
    # django-q2 reads 0 workers as "one per CPU core", not as "none".
    raise environ.ImproperlyConfigured(f"Q_WORKERS must be 1 or more, not {Q_WORKERS}")
if TRANSCODE_WORKERS < 0:
    raise environ.ImproperlyConfigured(
        f"TRANSCODE_WORKERS must be 0 (scripts/run.sh starts no transcode cluster) or more, not {TRANSCODE_WORKERS}"
    )
if Q_TIMEOUT_S < 60:
    raise environ.ImproperlyConfigured(f"Q_TIMEOUT_S must be at least 60 seconds, not {Q_TIMEOUT_S}")
_q_cluster_name = env.str("Q_CLUSTER_NAME", default="")
if _q_cluster_name not in ("", SHORT_TASKS_CLUSTER, TRANSCODE_CLUSTER):
    raise environ.ImproperlyConfigured(
        f"Q_CLUSTER_NAME={_q_cluster_name!r} names no cluster: use {TRANSCODE_CLUSTER!r} for transcodes, "
        f"{SHORT_TASKS_CLUSTER!r} or nothing for the short tasks"
    )
Q_CLUSTER = {
    "name": SHORT_TASKS_CLUSTER,
    "orm": "default",
    "workers": Q_WORKERS,
    # A task is killed after `timeout`; `retry` (when the broker hands a task out again) must be
    # longer, so a running task is never given to a second worker.
    "timeout": Q_TIMEOUT_S,
    "retry": Q_TIMEOUT_S + 600,
    # Retries are the services' (they know whether another attempt can help), not the broker's.
    "max_attempts": 1,
    "queue_limit": 4,
    "recycle": 50,
    "poll": 1,
    "catch_up": False,
    "ack_failures": True,
    "save_limit": 1000,
    "sync": env.bool("Q_SYNC", default=False),
    "cache": _cluster_stats_cache,
    "ALT_CLUSTERS": {
        TRANSCODE_CLUSTER: {
            # A transcode cluster started where TRANSCODE_WORKERS=0 still gets one worker, not one per core.
            "workers": max(TRANSCODE_WORKERS, 1),
            "timeout": TRANSCODE_TIMEOUT_S + 300,
            "retry": TRANSCODE_TIMEOUT_S + 900,
            # The pusher takes tasks off the queue ahead of a free worker; hold as few as it allows.
            "queue_limit": 1,
            # Schedules belong to the short-task cluster.
            "scheduler": False,
        },
    },
}

# --- Webhooks -------------------------------------------------------------------------
# Outgoing webhooks (unpuzzle.webhooks): signed per Standard Webhooks, retried with backoff for ~1.3 days.
# Host names allowed past the SSRF guard (loopback, private, link-local, ... addresses); exact names.
WEBHOOK_ALLOWED_HOSTS = [h.strip().lower() for h in env.list("WEBHOOK_ALLOWED_HOSTS", default=[]) if h.strip()]
# Accept http:// endpoint URLs (development only; production endpoints use https).
WEBHOOK_ALLOW_HTTP = env.bool("WEBHOOK_ALLOW_HTTP", default=False)
# One attempt (connect, send, answer) ends after this many seconds.
WEBHOOK_TIMEOUT_S = env.float("WEBHOOK_TIMEOUT_S", default=10.0)
# After a secret rotation the previous secret still signs deliveries (a second signature) this long.
WEBHOOK_SECRET_OVERLAP_S = env.int("WEBHOOK_SECRET_OVERLAP_S", default=24 * 3600)
# An endpoint every attempt to which has failed for this long is disabled and staff are told.
WEBHOOK_DISABLE_AFTER_S = env.int("WEBHOOK_DISABLE_AFTER_S", default=3 * 24 * 3600)
# Events (with their deliveries and attempts) are kept this many days, then the sweep deletes them.
WEBHOOK_RETENTION_DAYS = env.int("WEBHOOK_RETENTION_DAYS", default=30)
if WEBHOOK_RETENTION_DAYS < 2:
    raise environ.ImproperlyConfigured(
        f"WEBHOOK_RETENTION_DAYS must be 2 or more (deliveries are retried for 1.3 days), not {WEBHOOK_RETENTION_DAYS}"
    )
if WEBHOOK_TIMEOUT_S <= 0 or WEBHOOK_TIMEOUT_S > 60:
    raise environ.ImproperlyConfigured(f"WEBHOOK_TIMEOUT_S must be more than 0 and at most 60, not {WEBHOOK_TIMEOUT_S}")
if WEBHOOK_SECRET_OVERLAP_S < 0 or WEBHOOK_DISABLE_AFTER_S < 1:
    raise environ.ImproperlyConfigured(
        "WEBHOOK_SECRET_OVERLAP_S must be 0 or more and WEBHOOK_DISABLE_AFTER_S 1 or more seconds, "
        f"not {WEBHOOK_SECRET_OVERLAP_S} and {WEBHOOK_DISABLE_AFTER_S}"
    )

# --- Email ----------------------------------------------------------------------------
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="unpuzzle@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Abuse limits ---------------------------------------------------------------------
# Sign-ins (admin and /accounts/login/): after this many failures within LOGIN_LOCKOUT_S for one
# username, or from one client address, further sign-ins are refused, correct ones included, until
# the failures are LOGIN_LOCKOUT_S old. 0 switches a limit off.
LOGIN_MAX_FAILURES = env.int("LOGIN_MAX_FAILURES", default=5)
LOGIN_MAX_FAILURES_PER_ADDRESS = env.int("LOGIN_MAX_FAILURES_PER_ADDRESS", default=20)
LOGIN_LOCKOUT_S = env.int("LOGIN_LOCKOUT_S", default=15 * 60)
if LOGIN_LOCKOUT_S < 1:
    raise environ.ImproperlyConfigured(f"LOGIN_LOCKOUT_S must be 1 second or more, not {LOGIN_LOCKOUT_S}")

# Per user, counted in the cache: playback grants (the API's and the player page's; each counts a
# play in the delivery estimate) and upload creations (tus POST and direct-upload starts together).
# DRF rates, N/second|minute|hour|day; empty switches a throttle off.
PLAYBACK_GRANT_RATE = env.str("PLAYBACK_GRANT_RATE", default="120/hour").strip()
UPLOAD_CREATE_RATE = env.str("UPLOAD_CREATE_RATE", default="30/minute").strip()
for _name, _rate in (("PLAYBACK_GRANT_RATE", PLAYBACK_GRANT_RATE), ("UPLOAD_CREATE_RATE", UPLOAD_CREATE_RATE)):
    if _rate and not re.fullmatch(r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)", _rate):
        raise environ.ImproperlyConfigured(
            f"{_name}={_rate!r} is not a rate: use N/second, N/minute, N/hour or N/day (e.g. 60/minute), or empty for none"
        )

# --- API ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Tokens first: anonymous API calls then get 401 with WWW-Authenticate, not 403. Named tokens
        # (unpuzzle.tokens), then the unnamed ones of rest_framework.authtoken made before them.
        "unpuzzle.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "unpuzzle.openapi.ApiAutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 25,
    "EXCEPTION_HANDLER": "unpuzzle.exceptions.api_exception_handler",
    # No default throttles: the views that need one name it (unpuzzle.throttles), rates above.
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Unpuzzle media API",
    "DESCRIPTION": "Resumable uploads, videos, playback and costs.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "DEFAULT_GENERATOR_CLASS": "unpuzzle.openapi.ApiSchemaGenerator",
    # Swagger UI and Redoc from our own static files (drf-spectacular-sidecar): no CDN needed.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # OpenAPI 3.1 for its `webhooks`: the events this server POSTs to registered endpoints.
    "OAS_VERSION": "3.1.0",
    "WEBHOOKS": [
        "uploads.webhook_docs.upload_completed",
        "uploads.webhook_docs.upload_failed",
        "transcoding.webhook_docs.video_ready",
        "transcoding.webhook_docs.video_failed",
        "transcoding.webhook_docs.video_blocked",
        "transcoding.webhook_docs.video_deleted",
        "transcoding.webhook_docs.budget_alert",
        "transcoding.webhook_docs.kill_switch_engaged",
        "transcoding.webhook_docs.kill_switch_released",
    ],
}

# --- Security (production) ------------------------------------------------------------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
BEHIND_TLS_PROXY = env.bool("BEHIND_TLS_PROXY", default=False)
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Reverse proxies in front of the app that append the peer they saw to X-Forwarded-For: the client
# address is that many entries from the right (0: the TCP peer, and X-Forwarded-For is ignored).
NUM_PROXIES = env.int("NUM_PROXIES", default=1 if BEHIND_TLS_PROXY else 0)
if NUM_PROXIES < 0:
    raise environ.ImproperlyConfigured(f"NUM_PROXIES must be 0 (no proxy) or more, not {NUM_PROXIES}")
# Large bodies stream to disk through the tus view; this guards form posts only.
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
