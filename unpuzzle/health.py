"""``/healthz``: database, storage, ffmpeg/ffprobe and queue, as JSON (200 or 503)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from unpuzzle.storage import get_storage, is_local

if TYPE_CHECKING:
    from storages.backends.s3 import S3Storage

logger = logging.getLogger(__name__)


def _check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"vendor": connection.vendor}


def _check_storage() -> dict:
    storage = get_storage()
    if is_local(storage):
        location = settings.MEDIA_ROOT
        location.mkdir(parents=True, exist_ok=True)
        return {"backend": "local", "location": str(location)}
    # Storage is local or B2 (STORAGE_BACKEND): any non-local backend is django-storages' S3 one.
    s3: S3Storage = storage
    # HeadBucket proves endpoint, credentials and bucket name in one request.
    s3.connection.meta.client.head_bucket(Bucket=s3.bucket_name)
    return {"backend": type(s3).__name__, "bucket": getattr(s3, "bucket_name", "")}


def _check_binary(name: str) -> dict:
    path = shutil.which(name)
    if not path:
        raise RuntimeError(f"{name!r} not found on PATH")
    return {"path": path}


def _check_queue() -> dict:
    from django_q.brokers import get_broker

    queues = {}
    for cluster in (settings.SHORT_TASKS_CLUSTER, settings.TRANSCODE_CLUSTER):
        broker = get_broker(cluster)
        if not broker.ping():
            raise RuntimeError(f"the broker of cluster {cluster!r} did not answer")
        queues[cluster] = broker.queue_size()
    return {"broker": type(broker).__name__, "queued": sum(queues.values()), "queues": queues}


def run_checks() -> tuple[bool, dict]:
    """Run every check; a failing check reports its error instead of raising."""
    checks: dict[str, Callable[[], dict]] = {
        "database": _check_database,
        "storage": _check_storage,
        "ffmpeg": lambda: _check_binary(settings.FFMPEG_BIN),
        "ffprobe": lambda: _check_binary(settings.FFPROBE_BIN),
        "queue": _check_queue,
    }
    results: dict[str, dict] = {}
    healthy = True
    for name, check in checks.items():
        try:
            results[name] = {"ok": True, **check()}
        except Exception as exc:  # a health check reports every failure, whatever its type
            logger.warning("health check %s failed: %s", name, exc)
            results[name] = {"ok": False, "error": str(exc)}
            healthy = False
    return healthy, results


@never_cache
@require_GET
def healthz(request):
    healthy, results = run_checks()
    return JsonResponse({"status": "ok" if healthy else "unhealthy", "checks": results}, status=200 if healthy else 503)
